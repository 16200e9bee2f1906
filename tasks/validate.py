"""`tasks validate DROP`: check everything a drop's manifest promises; never modify the drop.

Each problem has a stable code (for reports and the quarantine table) and a message that
names the file. Arrays are memory-mapped and scanned in chunks, so memory stays flat.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from tasks import contract as c
from tasks.fsutil import atomic_write_json, sha256_file

CHUNK_ROWS = 65536


@dataclasses.dataclass
class Problem:
    code: str
    file: str
    message: str


@dataclasses.dataclass
class Report:
    drop: str
    ok: bool
    rows: int | None
    kind: str | None
    problems: list[Problem]
    checked_at: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        if self.ok:
            return f"{self.drop}: OK ({self.rows} rows, {self.kind})"
        return f"{self.drop}: INVALID\n" + "\n".join(f"  [{p.code}] {p.message}" for p in self.problems)


class _Checker:
    def __init__(self, drop: Path):
        self.drop = drop
        self.problems: list[Problem] = []

    def fail(self, code: str, file: str, message: str) -> None:
        self.problems.append(Problem(code, file, f"{self.drop / file if file else self.drop}: {message}"))


def validate_drop(drop: Path, require_kind: str | None = None) -> Report:
    drop = Path(drop)
    ck = _Checker(drop)
    manifest = _check_layout_and_manifest(ck, drop)
    rows = kind = None
    if manifest is not None:
        rows, kind = manifest.rows, manifest.kind
        if require_kind and manifest.kind != require_kind:
            ck.fail("wrong_kind", c.MANIFEST, f"kind is '{manifest.kind}', this step needs '{require_kind}'")
        if _check_checksums(ck, drop, manifest):
            _check_arrays(ck, drop, manifest)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return Report(str(drop), not ck.problems, rows, kind, ck.problems, now)


def _check_layout_and_manifest(ck: _Checker, drop: Path) -> c.Manifest | None:
    if drop.is_symlink():
        ck.fail("symlink", "", "the drop directory is a symlink")
        return None
    if not drop.is_dir():
        ck.fail("missing_file", "", "not a directory")
        return None
    if not c.DROP_ID_RE.match(drop.name):
        ck.fail("bad_drop_id", "", f"drop name {drop.name!r} is not a valid drop id")
    entries = [p for p in drop.iterdir() if p.name != c.MARKER]
    if not entries:
        ck.fail("empty_drop", "", "the drop holds no files")
        return None
    for p in entries:
        if p.is_symlink():
            ck.fail("symlink", p.name, "is a symlink; drops must contain regular files")
    if any(p.code == "symlink" for p in ck.problems):
        return None
    try:
        m = c.read_manifest(drop)
    except c.ContractError as e:
        code = "missing_manifest" if "missing manifest" in str(e) else "bad_manifest"
        ck.problems.append(Problem(code, c.MANIFEST, str(e)))
        return None
    if m.rows == 0:
        ck.fail("zero_rows", c.MANIFEST, "declares 0 rows")
        return None
    if m.kind == "labeled" and not m.label_names:
        ck.fail("bad_manifest", c.MANIFEST, "a labeled drop needs label_names")
        return None
    return m


def _required(m: c.Manifest) -> list[str]:
    req = [c.IMG, c.TXT, c.IDS] + ([c.LABELS] if m.kind == "labeled" else [])
    return req + ([c.TIMESTAMPS] if c.TIMESTAMPS in m.files else [])


def _check_checksums(ck: _Checker, drop: Path, m: c.Manifest) -> bool:
    ok = True
    for name in _required(m):
        path = drop / name
        if not path.is_file():
            ck.fail("missing_file", name, "missing file")
            ok = False
        elif name not in m.files:
            ck.fail("bad_manifest", c.MANIFEST, f"no sha256 listed for {name}")
            ok = False
        elif sha256_file(path) != m.files[name]:
            ck.fail("checksum_mismatch", name, "sha256 does not match the manifest (changed or corrupted)")
            ok = False
    for name in m.files:
        if name not in c.DATA_FILES:
            ck.fail("bad_manifest", c.MANIFEST, f"lists unknown file {name!r}")
            ok = False
    return ok


def _check_arrays(ck: _Checker, drop: Path, m: c.Manifest) -> None:
    arrays = {}
    for name in _required(m):
        try:
            arrays[name] = c.load_array(drop / name)
        except c.ContractError as e:
            code = "pickled_payload" if "pickled" in str(e) else "unreadable_npy"
            ck.problems.append(Problem(code, name, str(e)))
    if len(arrays) != len(_required(m)):
        return
    expect = {c.IMG: (2, m.img_dim, np.float32), c.TXT: (2, m.txt_dim, np.float32),
              c.LABELS: (2, m.n_labels, None), c.IDS: (1, None, None), c.TIMESTAMPS: (1, None, np.int64)}
    for name, arr in arrays.items():
        ndim, width, dtype = expect[name]
        if arr.ndim != ndim:
            ck.fail("wrong_shape", name, f"expected {ndim}-D, got shape {arr.shape}")
            continue
        if width is not None and arr.shape[1] != width:
            ck.fail("wrong_dim", name, f"expected {width} columns (manifest), got {arr.shape[1]}")
        if arr.shape[0] != m.rows:
            ck.fail("count_mismatch", name, f"has {arr.shape[0]} rows, manifest says {m.rows}")
        if dtype is not None and arr.dtype != dtype:
            ck.fail("wrong_dtype", name, f"dtype {arr.dtype}, expected {np.dtype(dtype).name}")
    if ck.problems:
        return
    for name in (c.IMG, c.TXT):
        bad = _first_nonfinite(arrays[name])
        if bad is not None:
            ck.fail("non_finite", name, f"NaN or Inf at row {bad[0]}, column {bad[1]}")
    if c.LABELS in arrays:
        _check_labels(ck, arrays[c.LABELS])
    _check_ids(ck, arrays[c.IDS])


def _first_nonfinite(arr: np.ndarray) -> tuple[int, int] | None:
    for start in range(0, arr.shape[0], CHUNK_ROWS):
        block = np.asarray(arr[start:start + CHUNK_ROWS])
        bad = ~np.isfinite(block)
        if bad.any():
            r, col = np.argwhere(bad)[0]
            return start + int(r), int(col)
    return None


def _check_labels(ck: _Checker, labels: np.ndarray) -> None:
    if labels.dtype.kind not in "biuf":
        ck.fail("wrong_dtype", c.LABELS, f"dtype {labels.dtype}, expected integers 0/1")
        return
    for start in range(0, labels.shape[0], CHUNK_ROWS):
        block = np.asarray(labels[start:start + CHUNK_ROWS])
        bad = (block != 0) & (block != 1)
        if bad.any():
            r, col = np.argwhere(bad)[0]
            ck.fail("non_binary_labels", c.LABELS,
                    f"labels must be 0/1; found {block[r, col]!r} at row {start + r}, column {col}")
            return


def _check_ids(ck: _Checker, ids: np.ndarray) -> None:
    if ids.dtype.kind not in "UiuS":
        ck.fail("wrong_dtype", c.IDS, f"dtype {ids.dtype}, expected strings or integers")
        return
    ids = np.asarray(ids)
    if ids.dtype.kind in "US" and (np.char.str_len(ids) == 0).any():
        ck.fail("missing_ids", c.IDS, f"empty post id at row {int(np.argmax(np.char.str_len(ids) == 0))}")
        return
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1]
        ck.fail("duplicate_ids", c.IDS, f"{int((counts - 1).sum())} duplicate post ids, e.g. {dup[0]!r}")


def write_report(report: Report, path: Path) -> None:
    atomic_write_json(path, report.to_json())
