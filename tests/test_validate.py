"""Every validation failure class gets its own code and a message naming the file."""
import json
import subprocess
import sys

import pytest

from tasks import contract as c
from tasks.validate import validate_drop
from tests import bad_drops as b
from tests.conftest import make_drop, tree_digest


def _empty(d):
    for p in d.iterdir():
        p.unlink()


# the breakers come from the bad-drop corpus (tests/bad_drops.py): one definition per kind
CASES = {
    "wrong_dim": (b.wrong_dims, "wrong_dim", c.IMG, "expected 8 columns"),
    "nan": (b.nan_values, "non_finite", c.TXT, "NaN or Inf at row 7, column 2"),
    "inf": (b.inf_values, "non_finite", c.IMG, "row 3, column 1"),
    "non_binary": (b.labels_not_binary, "non_binary_labels", c.LABELS, "found 2 at row 5, column 1"),
    "duplicate_ids": (b.duplicate_ids, "duplicate_ids", c.IDS, "1 duplicate post ids"),
    "empty_id": (b.missing_ids, "missing_ids", c.IDS, "empty post id at row 2"),
    "count_mismatch": (b.row_counts_disagree, "count_mismatch", c.TXT, "has 39 rows, manifest says 40"),
    "checksum_mismatch": (b.manifest_lying_checksum, "checksum_mismatch", c.IMG, "sha256 does not match"),
    "pickled_payload": (b.pickle_in_npy, "pickled_payload", c.IDS, "pickled Python objects"),
    "raw_pickle": (b.raw_pickle_payload, "pickled_payload", c.LABELS, "pickled Python objects"),
    "missing_file": (b.missing_data_file, "missing_file", c.TXT, "missing file"),
    "empty_drop": (_empty, "empty_drop", "", "holds no files"),
    "missing_manifest": (b.manifest_missing, "missing_manifest", c.MANIFEST, "missing manifest"),
    "invalid_json": (b.manifest_invalid_json, "bad_manifest", c.MANIFEST, "invalid JSON"),
    "wrong_dtype": (b.wrong_dtype, "wrong_dtype", c.IMG, "dtype float64, expected float32"),
    "truncated": (b.truncated_npy, "unreadable_npy", c.IMG, "not a readable .npy"),
    "zero_rows": (b.zero_rows, "zero_rows", c.MANIFEST, "declares 0 rows"),
    "symlink": (b.symlink_escaping_inbox, "symlink", c.TXT, "is a symlink"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_failure_class_has_its_own_clear_message(tmp_path, case):
    breaker, code, file, text = CASES[case]
    drop = make_drop(tmp_path / "bad")
    breaker(drop)
    before = tree_digest(drop)
    report = validate_drop(drop)
    assert not report.ok
    assert [p.code for p in report.problems][0] == code, report.summary()
    problem = report.problems[0]
    assert problem.file == file
    assert str(drop / file if file else drop) in problem.message and text in problem.message
    assert tree_digest(drop) == before, "validation must not modify the drop"


def test_a_good_drop_passes_with_timestamps(tmp_path):
    r = validate_drop(make_drop(tmp_path / "ok", timestamps=True))
    assert r.ok and r.rows == 40 and r.problems == []


def test_ids_that_differ_only_by_unicode_normalisation_or_padding_are_different_posts(tmp_path):
    """The contract (docs/data-contract.md): ids are compared exactly, never normalised, so two
    posts the source keeps apart are never merged; an exact repeat is still a duplicate."""
    import numpy as np
    from tasks.split import uniform
    rng = np.random.default_rng(0)
    ids = np.array(["caf\u00e9", "cafe\u0301", "cafe", " cafe", "post"])
    c.write_drop(tmp_path / "d", "d", rng.standard_normal((5, 8)).astype(np.float32),
                 rng.standard_normal((5, 6)).astype(np.float32), ids,
                 labels=np.eye(5, 4, dtype=np.uint8), source="test")
    r = validate_drop(tmp_path / "d")
    assert r.ok and r.problems == [], r.problems
    assert len(set(uniform(ids, seed=42).tolist())) == 5  # each id is a post of its own, split on its own hash
    c.write_drop(tmp_path / "e", "e", rng.standard_normal((2, 8)).astype(np.float32),
                 rng.standard_normal((2, 6)).astype(np.float32), np.array(["caf\u00e9", "caf\u00e9"]),
                 labels=np.eye(2, 4, dtype=np.uint8), source="test")
    assert [p.code for p in validate_drop(tmp_path / "e").problems] == ["duplicate_ids"]


def test_kind_requirement(tmp_path):
    r = validate_drop(make_drop(tmp_path / "u", labeled=False), require_kind="labeled")
    assert [p.code for p in r.problems] == ["wrong_kind"]


def test_cli_exit_code_and_report(tmp_path):
    drop = make_drop(tmp_path / "bad")
    b.nan_values(drop)
    report = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-m", "tasks", "validate", str(drop), "--report", str(report)],
                       capture_output=True, text=True)
    assert p.returncode == 3
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"ok": False, "rows": 40, "problems": ["non_finite"]}
    assert f"{drop / c.TXT}: NaN or Inf at row 7, column 2" in p.stderr
    saved = json.loads(report.read_text())
    assert saved["ok"] is False and saved["problems"][0]["file"] == c.TXT


def test_a_report_lists_at_most_max_problems_and_counts_the_rest(tmp_path):
    from tasks.validate import MAX_PROBLEMS
    make_drop(tmp_path / "d")
    for i in range(MAX_PROBLEMS + 25):
        (tmp_path / "d" / f"stray-{i:04d}.txt").write_text("x")
    r = validate_drop(tmp_path / "d")
    assert not r.ok and len(r.problems) == MAX_PROBLEMS + 1
    assert r.problems[-1].code == "more_problems" and "25 more problems not listed" in r.problems[-1].message
    assert len(json.dumps(r.to_json())) < 50_000


def test_an_unlabeled_drop_listing_labels_is_refused(tmp_path):
    """Issue 26: labels.npy listed with a wrong sha in an unlabeled drop passed (never checked)."""
    make_drop(tmp_path / "d", labeled=False)
    (tmp_path / "d" / c.LABELS).write_bytes(b"not even npy")
    m = json.loads((tmp_path / "d" / c.MANIFEST).read_text())
    m["files"][c.LABELS] = {"sha256": "0" * 64}
    (tmp_path / "d" / c.MANIFEST).write_text(json.dumps(m))
    r = validate_drop(tmp_path / "d")
    assert not r.ok and any("an unlabeled drop lists labels.npy" in p.message for p in r.problems), r.summary()
