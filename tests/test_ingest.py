"""Ingest takes only what was validated: its own destination, copies checked against the
validated manifest, no hang on special files, one schema per dataset, nothing replaced."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tasks import contract as c
from tasks.contract import ContractError
from tasks.ingest import ingest
from tasks.validate import read_schema, validate_drop, write_report
from tests import bad_drops as b
from tests.conftest import tree_digest


def valid(tmp_path, name="drop-1", seed=0):
    d = b.good(tmp_path / "processing", name, seed=seed)
    report = validate_drop(d, require_kind="labeled")
    assert report.ok, report.summary()
    write_report(report, tmp_path / f"{name}.json")
    return d, report


def cli_ingest(d, tmp_path, report=None):
    args = [sys.executable, "-m", "tasks", "ingest", str(d), "--dataset", str(tmp_path / "dataset")]
    if report:
        args += ["--validated", str(report)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_a_valid_drop_is_copied_with_its_own_marker_and_the_schema_recorded(tmp_path):
    d, report = valid(tmp_path)
    r = ingest(d, tmp_path / "dataset", manifest_sha256=report.manifest_sha256)
    dest = tmp_path / "dataset" / "drops" / "drop-1"
    assert r["drops"] == ["drop-1"] and r["dvc_md5"]
    for name in (c.IMG, c.TXT, c.LABELS, c.IDS, c.MANIFEST):
        assert (dest / name).read_bytes() == (d / name).read_bytes()
        assert os.stat(d / name).st_ino != os.stat(dest / name).st_ino, "a copy, never a link to the producer's file"
    assert (dest / c.MARKER).read_bytes() == b"" and os.stat(d / c.MARKER).st_ino != os.stat(dest / c.MARKER).st_ino
    assert read_schema(tmp_path / "dataset" / "schema.json") == {"img_dim": 8, "txt_dim": 6,
                                                                 "label_names": c.default_label_names(4)}


def test_a_file_changed_after_validation_is_refused(tmp_path):
    """The producer kept a hard link (or a handle) and writes NaNs after validation: the copy's
    hash differs from the validated manifest, nothing is ingested."""
    d, report = valid(tmp_path)
    a = np.load(d / c.TXT)
    a[:8] = np.nan
    with open(d / c.TXT, "r+b") as f:  # in place, as a kept handle would
        np.save(f, a)
    p = cli_ingest(d, tmp_path, tmp_path / "drop-1.json")
    assert p.returncode == 3 and "changed since it was validated" in p.stdout
    drops = tmp_path / "dataset" / "drops"
    assert not drops.exists() or list(drops.iterdir()) == [], "no drop and no temp dir left behind"


def test_a_manifest_rewritten_after_validation_is_refused(tmp_path):
    """Re-signing tampered data after validation: the manifest is not the validated one."""
    d, report = valid(tmp_path)
    np.save(d / c.TXT, np.full((b.ROWS, 6), np.nan, np.float32))
    b._resign(d)
    p = cli_ingest(d, tmp_path, tmp_path / "drop-1.json")
    assert p.returncode == 3 and "manifest.json: changed since it was validated" in p.stdout
    assert not (tmp_path / "dataset" / "drops" / "drop-1").exists()


def test_the_destination_is_the_validated_name_and_nothing_is_replaced(tmp_path):
    d, report = valid(tmp_path)
    ingest(d, tmp_path / "dataset", manifest_sha256=report.manifest_sha256)
    before = tree_digest(tmp_path / "dataset" / "drops")
    # a manifest that names a path outside the dataset
    e, _ = valid(tmp_path, "drop-2", seed=2)
    b._edit_manifest(e, drop_id="../../escaped")
    with pytest.raises(ContractError, match="not a valid drop id"):
        ingest(e, tmp_path / "dataset")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "dataset" / "escaped").exists()
    # another drop under an id the dataset already holds
    f = b.good(tmp_path / "elsewhere", "drop-1", seed=7)
    with pytest.raises(ContractError, match="already in the dataset with other content"):
        ingest(f, tmp_path / "dataset")
    assert tree_digest(tmp_path / "dataset" / "drops") == before
    # the same drop again (a retried task) is a no-op
    assert ingest(d, tmp_path / "dataset")["drops"] == ["drop-1"]
    assert tree_digest(tmp_path / "dataset" / "drops") == before


@pytest.mark.parametrize("how", ["fifo", "dev_zero"])
def test_special_files_never_hang_ingest(tmp_path, how):
    d, _ = valid(tmp_path)
    (d / c.TXT).unlink()
    if how == "fifo":
        os.mkfifo(d / c.TXT)
    else:
        (d / c.TXT).symlink_to("/dev/zero")
    t0 = time.monotonic()
    p = cli_ingest(d, tmp_path)
    assert p.returncode == 3 and time.monotonic() - t0 < 30
    assert ("is a FIFO" if how == "fifo" else "symlink") in p.stdout  # validation, which runs first, says so
    assert not (tmp_path / "dataset" / "drops" / "drop-1").exists()


def test_one_schema_per_dataset_and_the_way_to_a_new_one(tmp_path):
    d, report = valid(tmp_path)
    ingest(d, tmp_path / "dataset", manifest_sha256=report.manifest_sha256)
    # a drop with 3 topics instead of 4: refused at validation (with the way out) and at ingest
    e = b.good(tmp_path / "processing", "drop-3", seed=3)
    b._save(e, c.LABELS, np.load(e / c.LABELS)[:, :3])
    b._edit_manifest(e, label_names=c.default_label_names(3))
    b._resign(e)
    schema = read_schema(tmp_path / "dataset" / "schema.json")
    r = validate_drop(e, require_kind="labeled", schema=schema)
    assert [p.code for p in r.problems] == ["schema_mismatch"] and "start a new dataset" in r.problems[0].message
    with pytest.raises(ContractError, match="differ from the dataset"):
        ingest(e, tmp_path / "dataset")
    # the documented way: a new label set starts a new dataset (docs/data-contract.md)
    assert validate_drop(e, require_kind="labeled", schema=read_schema(tmp_path / "new" / "schema.json")).ok
    ingest(e, tmp_path / "new")
    assert json.loads((tmp_path / "new" / "schema.json").read_text())["label_names"] == c.default_label_names(3)


def test_without_a_report_the_drop_is_validated_first_and_nothing_outside_is_touched(tmp_path):
    """A manifest naming ../ paths (issue 26): without --validated, ingest validates first and
    refuses; the function itself refuses such a name too, whatever the caller checked."""
    d, _ = valid(tmp_path)
    outside = tmp_path / "SOURCE.txt"
    outside.write_text("secret")
    m = json.loads((d / c.MANIFEST).read_text())
    m["files"]["../../SOURCE.txt"] = {"sha256": "0" * 64}
    (d / c.MANIFEST).write_text(json.dumps(m))
    before = sorted(p for p in tmp_path.rglob("*"))
    p = cli_ingest(d, tmp_path)
    assert p.returncode == 3 and "nothing was ingested" in p.stdout, p.stdout + p.stderr
    after = sorted(p for p in tmp_path.rglob("*"))
    assert [x for x in after if x not in before and "dataset" not in x.relative_to(tmp_path).parts] == []
    assert not (tmp_path / "dataset" / "drops").exists() or list((tmp_path / "dataset" / "drops").iterdir()) == []
    with pytest.raises(c.ContractError, match="not a file name inside the drop"):
        ingest(d, tmp_path / "dataset")


def test_without_a_report_a_valid_drop_is_ingested(tmp_path):
    d, _ = valid(tmp_path)
    p = cli_ingest(d, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["drops"] == ["drop-1"]
