"""The bad-drop corpus: one builder per kind of bad input a producer can send.

Each builder writes a drop into the inbox and returns its directory name. Used by
tests/test_reliability.py and docs/make_reliability.py (which writes docs/reliability.md).
"""
from __future__ import annotations

import json
import os
import pickle
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
}


def build(inbox: Path, kind: str) -> Path:
    """Write the bad drop of `kind` into `inbox`; returns its path (marker present, as a producer would)."""
    breaker, name, _ = CORPUS[kind]
    inbox.mkdir(parents=True, exist_ok=True)
    if kind == "path-traversal / invalid drop name":
        d = good(inbox.parent / "elsewhere", "x", seed=1)
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
    record per drop in the order the DAG would take them."""
    from include import drops
    from tasks.validate import validate_drop, write_report
    s.quarantine.mkdir(parents=True, exist_ok=True)
    seen, known = [], {p.name for p in s.quarantine.iterdir()}

    def refused_at_claim():  # claim quarantines unclaimable entries (bad names, symlinked dirs) on sight
        nonlocal known
        now = {p.name for p in s.quarantine.iterdir()}
        for q in sorted(now - known):
            seen.append({"drop": q, "outcome": "quarantined at claim", "where": str(s.quarantine / q)})
        known = now

    while (claimed := drops.claim(s)) is not None:
        refused_at_claim()
        if "duplicate_of" in claimed:
            seen.append({"drop": claimed["drop_id"], "outcome": "duplicate", "where": claimed["drop"]})
            continue
        write_report(validate_drop(claimed["drop"], require_kind="labeled"), claimed["report"])
        if drops.validation_ok(claimed):
            seen.append({"drop": claimed["drop_id"], "outcome": "accepted", "where": drops.archive(s, claimed)})
        else:
            seen.append({"drop": claimed["drop_id"], "outcome": "quarantined", "where": drops.quarantine(s, claimed)})
        known = {p.name for p in s.quarantine.iterdir()}
    refused_at_claim()
    return seen
