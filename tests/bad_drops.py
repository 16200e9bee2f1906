"""The bad-drop corpus: one builder per kind of bad input a producer can send.

Each builder writes a drop into the inbox and returns its directory name. Used by
tests/test_reliability.py and docs/make_reliability.py (which writes docs/reliability.md).
"""
from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np

from tasks import contract as c
from tasks.fsutil import sha256_file

ROWS = 40


def good(inbox: Path, name: str, seed: int = 0, labeled: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    d = inbox / name
    c.write_drop(d, name, rng.standard_normal((ROWS, 8)).astype(np.float32),
                 rng.standard_normal((ROWS, 6)).astype(np.float32),
                 np.array([f"{name}-{i}" for i in range(ROWS)]),
                 labels=(rng.random((ROWS, 4)) < 0.3).astype(np.uint8) if labeled else None, source="corpus")
    return d


def _resign(d: Path) -> None:
    m = json.loads((d / c.MANIFEST).read_text())
    for name in m["files"]:
        if (d / name).is_file():
            m["files"][name]["sha256"] = sha256_file(d / name)
    (d / c.MANIFEST).write_text(json.dumps(m))


def _save(d: Path, name: str, arr: np.ndarray) -> None:
    np.save(d / name, arr)
    _resign(d)


def _edit_manifest(d: Path, **changes) -> None:
    m = json.loads((d / c.MANIFEST).read_text())
    m.update(changes)
    (d / c.MANIFEST).write_text(json.dumps(m))


def truncated_npy(d):
    data = (d / c.IMG).read_bytes(); (d / c.IMG).write_bytes(data[: len(data) // 2]); _resign(d)


def wrong_dtype(d):
    _save(d, c.IMG, np.load(d / c.IMG).astype(np.float64))


def wrong_dims(d):
    _save(d, c.IMG, np.zeros((ROWS, 9), np.float32))


def nan_values(d):
    a = np.load(d / c.TXT); a[7, 2] = np.nan; _save(d, c.TXT, a)


def inf_values(d):
    a = np.load(d / c.IMG); a[3, 1] = np.inf; _save(d, c.IMG, a)


def labels_not_binary(d):
    a = np.load(d / c.LABELS); a[5, 1] = 2; _save(d, c.LABELS, a)


def duplicate_ids(d):
    a = np.load(d / c.IDS); a[9] = a[4]; _save(d, c.IDS, a)


def missing_ids(d):
    a = np.load(d / c.IDS); a[2] = ""; _save(d, c.IDS, a)


def row_counts_disagree(d):
    _save(d, c.TXT, np.load(d / c.TXT)[: ROWS - 1])


def manifest_missing(d):
    (d / c.MANIFEST).unlink()


def manifest_invalid_json(d):
    (d / c.MANIFEST).write_text("{not json")


def manifest_lying_checksum(d):
    a = np.load(d / c.IMG); a[0, 0] += 1; np.save(d / c.IMG, a)


def manifest_wrong_rows(d):
    _edit_manifest(d, rows=ROWS + 1)


def pickle_in_npy(d):
    np.save(d / c.IDS, np.array([{"x": i} for i in range(ROWS)], dtype=object), allow_pickle=True); _resign(d)


def raw_pickle_payload(d):
    (d / c.LABELS).write_bytes(pickle.dumps([1, 2, 3])); _resign(d)


def symlink_escaping_inbox(d):
    (d / c.TXT).unlink(); (d / c.TXT).symlink_to("/etc/passwd")


def missing_data_file(d):
    (d / c.TXT).unlink()


def empty_drop(d):
    for p in d.iterdir():
        p.unlink()
    (d / c.MARKER).touch()  # the marker alone: a drop "without data"


def zero_rows(d):
    _edit_manifest(d, rows=0)


def huge_header(d):
    # a valid .npy header claiming 10^12 rows over a 128-byte body: must not allocate or hang
    with open(d / c.IMG, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 8)})
        f.write(b"\0" * 128)
    _resign(d)


def unlabeled_in_training_inbox(d):
    (d / c.LABELS).unlink()
    m = json.loads((d / c.MANIFEST).read_text())
    m["kind"] = "unlabeled"; m["files"].pop(c.LABELS)
    (d / c.MANIFEST).write_text(json.dumps(m))


# -- special files: refused without being opened (no hang) ------------------------------------
def marker_fifo(d):
    (d / c.MARKER).unlink(); os.mkfifo(d / c.MARKER)


def marker_to_dev_zero(d):
    (d / c.MARKER).unlink(); (d / c.MARKER).symlink_to("/dev/zero")


def marker_directory(d):
    (d / c.MARKER).unlink(); (d / c.MARKER).mkdir()


def marker_not_empty(d):
    (d / c.MARKER).write_text("done\n")


def data_fifo(d):
    (d / c.TXT).unlink(); os.mkfifo(d / c.TXT)


def manifest_fifo(d):
    (d / c.MANIFEST).unlink(); os.mkfifo(d / c.MANIFEST)


def data_device(d):
    (d / c.IMG).unlink(); os.mknod(d / c.IMG, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers


def subdirectory(d):
    (d / "extra").mkdir(); (d / "extra" / "x.npy").write_bytes(b"x")


def unexpected_file(d):
    (d / "notes.txt").write_text("hello")


def hard_linked(d):
    # the producer keeps a second name for the file, to change it after validation
    kept = d.parent.parent / "producer-kept-links"
    kept.mkdir(exist_ok=True)
    os.link(d / c.TXT, kept / d.name)


# -- the manifest: paths, bounds ------------------------------------------------------------------
def drop_id_traversal(d):
    _edit_manifest(d, drop_id="../../escaped")


def drop_id_absolute(d):
    _edit_manifest(d, drop_id="/tmp/escaped")


def deeply_nested_manifest(d):
    m = (d / c.MANIFEST).read_text()
    (d / c.MANIFEST).write_text(m[:-1] + ', "source": ' + "[" * 100_000 + "]" * 100_000 + "}")


def huge_integer(d):
    m = (d / c.MANIFEST).read_text()
    (d / c.MANIFEST).write_text(m.replace(f'"rows": {ROWS}', '"rows": ' + "9" * 5001))


def manifest_too_big(d):
    _edit_manifest(d, source="x" * (2 << 20))


def huge_rows(d):
    _edit_manifest(d, rows=10**12)


def bad_label_name(d):
    _edit_manifest(d, label_names=["topic_00", "../etc", "topic\n02", "topic_03"])


def empty_label_names(d):
    _edit_manifest(d, label_names=[])


# -- arrays ----------------------------------------------------------------------------------------
def negative_dimension(d):
    with open(d / c.IMG, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (-ROWS, 8)})
    _resign(d)


def fortran_order(d):
    _save(d, c.IMG, np.asfortranarray(np.load(d / c.IMG)))


def csv_as_npy(d):
    (d / c.IMG).write_text("\n".join(",".join("0.5" for _ in range(8)) for _ in range(ROWS))); _resign(d)


def wide_ids(d):
    ids = np.array([f"{i}" for i in range(ROWS)], dtype="<U100000"); _save(d, c.IDS, ids)


def all_zero_labels(d):
    _save(d, c.LABELS, np.zeros((ROWS, 4), np.uint8))


def sparse_huge_file(d):
    # 1 GiB of holes behind a 40-row header: refused from the header and the size, never hashed
    with open(d / c.TXT, "r+b") as f:
        f.truncate(1 << 30)


# -- one schema per dataset: the dataset already holds drops of 8x6 dims and 4 topics ------------
def _dataset_schema(d):
    schema = d.parent.parent / "dataset" / "schema.json"
    schema.parent.mkdir(parents=True, exist_ok=True)
    schema.write_text(json.dumps({"img_dim": 8, "txt_dim": 6, "label_names": c.default_label_names(4)}))


def other_label_set(d):
    _dataset_schema(d)
    _save(d, c.LABELS, np.load(d / c.LABELS)[:, :3])
    _edit_manifest(d, label_names=c.default_label_names(3))


def other_dims(d):
    _dataset_schema(d)
    _save(d, c.IMG, np.zeros((ROWS, 9), np.float32) + 0.5)
    _edit_manifest(d, dims={"img": 9, "txt": 6})


# kind -> (how to break a good drop, the drop's directory name, the problem code reported)
CORPUS = {
    "truncated .npy": (truncated_npy, "truncated", "unreadable_npy"),
    "wrong dtype": (wrong_dtype, "dtype", "wrong_dtype"),
    "wrong dims": (wrong_dims, "dims", "wrong_dim"),
    "NaN values": (nan_values, "nan", "non_finite"),
    "Inf values": (inf_values, "inf", "non_finite"),
    "labels not 0/1": (labels_not_binary, "labels", "non_binary_labels"),
    "duplicate ids": (duplicate_ids, "dup-ids", "duplicate_ids"),
    "missing (empty) ids": (missing_ids, "empty-ids", "missing_ids"),
    "row counts disagree": (row_counts_disagree, "rows", "count_mismatch"),
    "manifest missing": (manifest_missing, "no-manifest", "missing_manifest"),
    "manifest invalid JSON": (manifest_invalid_json, "bad-json", "bad_manifest"),
    "manifest with lying checksums": (manifest_lying_checksum, "checksum", "checksum_mismatch"),
    "manifest rows lie": (manifest_wrong_rows, "manifest-rows", "count_mismatch"),
    "pickle inside .npy": (pickle_in_npy, "pickle-npy", "pickled_payload"),
    "raw pickle payload": (raw_pickle_payload, "pickle-raw", "pickled_payload"),
    "symlink escaping the inbox": (symlink_escaping_inbox, "symlink", "symlink"),
    "missing data file": (missing_data_file, "missing-file", "missing_file"),
    "marker without data": (empty_drop, "marker-only", "empty_drop"),
    "zero rows": (zero_rows, "zero-rows", "zero_rows"),
    "huge .npy header": (huge_header, "huge-header", "unreadable_npy"),
    "unlabeled drop in the training inbox": (unlabeled_in_training_inbox, "unlabeled", "wrong_kind"),
    "path-traversal / invalid drop name": (None, "bad name..", "bad_drop_id"),
    "drop directory is a symlink": (None, "linked-drop", "symlink"),
    "drop name ending in a newline": (None, "newline\n", "bad_drop_id"),
    "marker is a FIFO": (marker_fifo, "marker-fifo", "bad_marker"),
    "marker is a symlink to /dev/zero": (marker_to_dev_zero, "marker-zero", "bad_marker"),
    "marker is a directory": (marker_directory, "marker-dir", "bad_marker"),
    "marker is not empty": (marker_not_empty, "marker-full", "bad_marker"),
    "a data file is a FIFO": (data_fifo, "data-fifo", "not_regular_file"),
    "the manifest is a FIFO": (manifest_fifo, "manifest-fifo", "not_regular_file"),
    "a data file is a device": (data_device, "data-device", "not_regular_file"),
    "a subdirectory inside the drop": (subdirectory, "subdir", "not_regular_file"),
    "a file that is not part of a drop": (unexpected_file, "extra-file", "unexpected_file"),
    "a hard-linked data file (changeable after validation)": (hard_linked, "hard-link", "hard_linked"),
    "manifest drop_id with '../'": (drop_id_traversal, "id-traversal", "bad_manifest"),
    "manifest drop_id as an absolute path": (drop_id_absolute, "id-absolute", "bad_manifest"),
    "manifest nested 100,000 deep": (deeply_nested_manifest, "deep-json", "bad_manifest"),
    "manifest with a 5,001-digit integer": (huge_integer, "huge-int", "bad_manifest"),
    "manifest over 1 MiB": (manifest_too_big, "big-manifest", "bad_manifest"),
    "manifest declaring 10^12 rows": (huge_rows, "huge-rows", "bad_manifest"),
    "label names with '/' or control characters": (bad_label_name, "label-names", "bad_manifest"),
    "an empty label_names list": (empty_label_names, "empty-label-names", "bad_manifest"),
    "negative .npy dimension": (negative_dimension, "negative-dim", "unreadable_npy"),
    "Fortran-ordered array": (fortran_order, "fortran", "unreadable_npy"),
    "CSV renamed .npy": (csv_as_npy, "csv", "not_npy"),
    "post ids 100,000 characters wide": (wide_ids, "wide-ids", "too_large"),
    "labeled drop with no positive label": (all_zero_labels, "zero-labels", "no_positive_labels"),
    "sparse 1 GiB file behind a small header": (sparse_huge_file, "sparse", "unreadable_npy"),
    "a label set other than the dataset's (3 of 4 topics)": (other_label_set, "other-labels", "schema_mismatch"),
    "dims other than the dataset's": (other_dims, "other-dims", "schema_mismatch"),
}


def build(inbox: Path, kind: str) -> Path:
    """Write the bad drop of `kind` into `inbox`; returns its path (marker present, as a producer would)."""
    breaker, name, _ = CORPUS[kind]
    inbox.mkdir(parents=True, exist_ok=True)
    if kind == "path-traversal / invalid drop name":
        d = good(inbox.parent / "elsewhere", "x", seed=1)
        os.rename(d, inbox / name)
        return inbox / name
    if kind == "drop name ending in a newline":
        d = good(inbox.parent / "elsewhere", "nl", seed=4)
        os.rename(d, inbox / name)
        return inbox / name
    if kind == "drop directory is a symlink":
        target = good(inbox.parent / "outside-the-inbox", "linked-drop", seed=2)
        (inbox / name).symlink_to(target, target_is_directory=True)
        return inbox / name
    d = good(inbox, name, seed=3)
    breaker(d)
    return d


def drain(s) -> list[dict]:
    """The retraining DAG's drop handling without the training: claim -> validate (what the
    validate container runs) -> quarantine or archive, until the inbox is empty. Returns one
    record per drop in the order the DAG would take them, with the seconds its claim and
    validation took (an upper bound for drops refused at claim: the whole claim call)."""
    import time
    from include import drops
    from tasks.validate import read_schema, validate_drop, write_report
    s.quarantine.mkdir(parents=True, exist_ok=True)
    seen, known = [], {p.name for p in s.quarantine.iterdir()}

    def refused_at_claim(secs):  # claim quarantines unclaimable entries (bad names, links, markers) on sight
        nonlocal known
        now = {p.name for p in s.quarantine.iterdir()}
        for q in sorted(now - known):
            seen.append({"drop": q, "outcome": "quarantined at claim", "where": str(s.quarantine / q), "seconds": secs})
        known = now

    while True:
        t0 = time.monotonic()
        claimed = drops.claim(s)
        claim_s = time.monotonic() - t0
        refused_at_claim(claim_s)
        if claimed is None:
            break
        if "duplicate_of" in claimed:
            seen.append({"drop": claimed["drop_id"], "outcome": "duplicate", "where": claimed["drop"], "seconds": claim_s})
            continue
        t0 = time.monotonic()
        write_report(validate_drop(claimed["drop"], require_kind="labeled",
                                   schema=read_schema(s.dataset / "schema.json")), claimed["report"])
        secs = claim_s + time.monotonic() - t0
        if drops.validation_ok(claimed):
            seen.append({"drop": claimed["drop_id"], "outcome": "accepted", "where": drops.archive(s, claimed),
                         "seconds": secs})
        else:
            seen.append({"drop": claimed["drop_id"], "outcome": "quarantined", "where": drops.quarantine(s, claimed),
                         "seconds": secs})
        known = {p.name for p in s.quarantine.iterdir()}
    return seen
