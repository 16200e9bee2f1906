"""Every validation failure class gets its own code and a message naming the file."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from tasks import contract as c
from tasks.validate import validate_drop
from tests.conftest import make_drop, resign, tree_digest


def _save(path, arr):
    np.save(path, arr)
    resign(path.parent)


def wrong_dim(d):
    _save(d / c.IMG, np.zeros((40, 9), np.float32))


def nan(d):
    a = np.load(d / c.TXT)
    a[7, 2] = np.nan
    _save(d / c.TXT, a)


def inf(d):
    a = np.load(d / c.IMG)
    a[3, 1] = np.inf
    _save(d / c.IMG, a)


def non_binary(d):
    a = np.load(d / c.LABELS)
    a[5, 1] = 2
    _save(d / c.LABELS, a)


def duplicate_ids(d):
    a = np.load(d / c.IDS)
    a[9] = a[4]
    _save(d / c.IDS, a)


def empty_id(d):
    a = np.load(d / c.IDS)
    a[2] = ""
    _save(d / c.IDS, a)


def count_mismatch(d):
    _save(d / c.TXT, np.load(d / c.TXT)[:39])


def checksum_mismatch(d):
    a = np.load(d / c.IMG)
    a[0, 0] += 1
    np.save(d / c.IMG, a)  # not re-signed: the manifest's sha256 is now a lie


def pickled(d):
    np.save(d / c.IDS, np.array([{"x": i} for i in range(40)], dtype=object), allow_pickle=True)
    resign(d)


def raw_pickle(d):
    (d / c.LABELS).write_bytes(pickle.dumps([1, 2, 3]))
    resign(d)


def missing_file(d):
    (d / c.TXT).unlink()


def empty_drop(d):
    for p in d.iterdir():
        p.unlink()


def missing_manifest(d):
    (d / c.MANIFEST).unlink()


def invalid_json(d):
    (d / c.MANIFEST).write_text("{not json")


def wrong_dtype(d):
    _save(d / c.IMG, np.load(d / c.IMG).astype(np.float64))


def truncated(d):
    data = (d / c.IMG).read_bytes()
    (d / c.IMG).write_bytes(data[: len(data) // 2])
    resign(d)


def zero_rows(d):
    m = json.loads((d / c.MANIFEST).read_text())
    m["rows"] = 0
    (d / c.MANIFEST).write_text(json.dumps(m))


def symlink(d):
    (d / c.TXT).unlink()
    (d / c.TXT).symlink_to("/etc/passwd")


CASES = {
    "wrong_dim": (wrong_dim, "wrong_dim", c.IMG, "expected 8 columns"),
    "nan": (nan, "non_finite", c.TXT, "NaN or Inf at row 7, column 2"),
    "inf": (inf, "non_finite", c.IMG, "row 3, column 1"),
    "non_binary": (non_binary, "non_binary_labels", c.LABELS, "found 2 at row 5, column 1"),
    "duplicate_ids": (duplicate_ids, "duplicate_ids", c.IDS, "1 duplicate post ids"),
    "empty_id": (empty_id, "missing_ids", c.IDS, "empty post id at row 2"),
    "count_mismatch": (count_mismatch, "count_mismatch", c.TXT, "has 39 rows, manifest says 40"),
    "checksum_mismatch": (checksum_mismatch, "checksum_mismatch", c.IMG, "sha256 does not match"),
    "pickled_payload": (pickled, "pickled_payload", c.IDS, "pickled Python objects"),
    "raw_pickle": (raw_pickle, "pickled_payload", c.LABELS, "pickled Python objects"),
    "missing_file": (missing_file, "missing_file", c.TXT, "missing file"),
    "empty_drop": (empty_drop, "empty_drop", "", "holds no files"),
    "missing_manifest": (missing_manifest, "missing_manifest", c.MANIFEST, "missing manifest"),
    "invalid_json": (invalid_json, "bad_manifest", c.MANIFEST, "invalid JSON"),
    "wrong_dtype": (wrong_dtype, "wrong_dtype", c.IMG, "dtype float64, expected float32"),
    "truncated": (truncated, "unreadable_npy", c.IMG, "not a readable .npy"),
    "zero_rows": (zero_rows, "zero_rows", c.MANIFEST, "declares 0 rows"),
    "symlink": (symlink, "symlink", c.TXT, "is a symlink"),
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


def test_kind_requirement(tmp_path):
    r = validate_drop(make_drop(tmp_path / "u", labeled=False), require_kind="labeled")
    assert [p.code for p in r.problems] == ["wrong_kind"]


def test_cli_exit_code_and_report(tmp_path):
    drop = make_drop(tmp_path / "bad")
    nan(drop)
    report = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-m", "tasks", "validate", str(drop), "--report", str(report)],
                       capture_output=True, text=True)
    assert p.returncode == 3
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"ok": False, "rows": 40, "problems": ["non_finite"]}
    assert f"{drop / c.TXT}: NaN or Inf at row 7, column 2" in p.stderr
    saved = json.loads(report.read_text())
    assert saved["ok"] is False and saved["problems"][0]["file"] == c.TXT
