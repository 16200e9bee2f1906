"""`tasks validate DROP`: check everything a drop's manifest promises; never modify the drop.

Each problem has a stable code (for reports and the quarantine table) and a message that
names the file. Validation never crashes and never hangs: every entry is lstat'ed before
anything is opened (a FIFO or device is refused, not read), files are opened without
following links and without blocking, each .npy header is checked against the file's size
and the manifest before a byte of data is hashed, and any unexpected error becomes a problem
of its own. Arrays are memory-mapped and scanned in chunks, so memory stays flat. A file
changed while it was being checked (an open handle or a hard link the producer kept) is
caught by comparing its inode state before hashing and after the scan.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np

from tasks import contract as c
from tasks.fsutil import atomic_write_json

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
    warnings: list[str] = dataclasses.field(default_factory=list)
    manifest_sha256: str | None = None  # what ingest checks it copies the validated manifest

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        if self.ok:
            return f"{self.drop}: OK ({self.rows} rows, {self.kind})" + "".join(f"\n  warning: {w}"
                                                                            for w in self.warnings)
        return f"{self.drop}: INVALID\n" + "\n".join(f"  [{p.code}] {p.message}" for p in self.problems)


MAX_PROBLEMS = 50  # listed in a report; the rest are counted


class _Checker:
    def __init__(self, drop: Path):
        self.drop = drop
        self.problems: list[Problem] = []
        self.unlisted = 0
        self.warnings: list[str] = []

    def add(self, problem: Problem) -> None:
        """Keep the first MAX_PROBLEMS; count the rest (100,000 stray files made a 24 MB report)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.unlisted += 1

    def listed(self) -> list[Problem]:
        more = [Problem("more_problems", "", f"{self.drop}: {self.unlisted} more problems not listed")] \
            if self.unlisted else []
        return self.problems + more

    def fail(self, code: str, file: str, message: str) -> None:
        self.add(Problem(code, file, f"{self.drop / file if file else self.drop}: {message}"))

    def contract_error(self, file: str, e: c.ContractError) -> None:
        msg = str(e)
        code = ("pickled_payload" if "pickled" in msg else "not_npy" if "not a .npy file" in msg
                else "symlink" if "symlink" in msg else "not_regular_file" if "not a regular file" in msg
                else "missing_file" if "missing file" in msg else "too_large" if "limit" in msg
                else "unreadable_npy")
        self.add(Problem(code, file, msg))


def validate_drop(drop: Path, require_kind: str | None = None, schema: dict | None = None) -> Report:
    """Never raises on bad input: every failure is a Problem in the report."""
    drop = Path(drop)
    ck = _Checker(drop)
    rows = kind = digest = None
    try:
        manifest, digest = _check_layout_and_manifest(ck, drop)
        if manifest is not None:
            rows, kind = manifest.rows, manifest.kind
            if require_kind and manifest.kind != require_kind:
                ck.fail("wrong_kind", c.MANIFEST, f"kind is '{manifest.kind}', this step needs '{require_kind}'")
            if schema and manifest.kind == "labeled":
                _check_schema(ck, manifest, schema)
            if not ck.problems and (layouts := _check_headers(ck, drop, manifest)) is not None:
                if (before := _check_checksums(ck, drop, manifest)) is not None:
                    _check_arrays(ck, drop, manifest, layouts)
                    _check_unchanged(ck, drop, before)
    except Exception as e:  # noqa: BLE001 - a hostile drop must never crash the report
        ck.fail("internal_error", "", f"validation stopped on {type(e).__name__}: {str(e)[:300]}")
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return Report(str(drop), not ck.problems, rows, kind, ck.listed(), now, ck.warnings,
                  digest if not ck.problems else None)


def _check_layout_and_manifest(ck: _Checker, drop: Path) -> tuple[c.Manifest | None, str | None]:
    m, digest = _layout_and_manifest(ck, drop)
    return (m, digest) if m is not None and not ck.problems else (None, None)


def _layout_and_manifest(ck: _Checker, drop: Path) -> tuple[c.Manifest | None, str | None]:
    none = (None, None)
    try:
        st = os.lstat(drop)
    except FileNotFoundError:
        ck.fail("missing_file", "", "no such directory")
        return none
    if stat.S_ISLNK(st.st_mode):
        ck.fail("symlink", "", "the drop directory is a symlink")
        return none
    if not stat.S_ISDIR(st.st_mode):
        ck.fail("not_regular_file", "", f"not a directory ({c.file_kind(st.st_mode)})")
        return none
    if not c.valid_drop_id(drop.name):
        ck.fail("bad_drop_id", "", f"drop name {drop.name!r} is not a valid drop id")
    allowed = {*c.DATA_FILES, c.MANIFEST, c.MARKER}
    entries = {}
    for p in sorted(drop.iterdir()):
        entries[p.name] = os.lstat(p)
    data_entries = [n for n in entries if n != c.MARKER]
    if not data_entries:
        ck.fail("empty_drop", "", "the drop holds no files")
        return none
    for name, st in entries.items():
        if stat.S_ISLNK(st.st_mode):
            ck.fail("symlink", name, "is a symlink; drops must contain regular files")
        elif not stat.S_ISREG(st.st_mode):
            ck.fail("not_regular_file", name, f"is {c.file_kind(st.st_mode)}; drops hold regular files only")
        elif name not in allowed:
            ck.fail("unexpected_file", name, f"not part of a drop (allowed: {', '.join(sorted(allowed))})")
        elif name == c.MARKER and st.st_size != 0:
            ck.fail("bad_marker", name, f"the marker must be empty, it has {st.st_size} bytes")
        elif st.st_nlink > 1:
            ck.fail("hard_linked", name, f"has {st.st_nlink} hard links; a drop's files must have one, "
                                         "so nobody can change them after validation")
    if ck.problems:
        return none
    try:
        m, digest = c.read_manifest_with_digest(drop)
    except c.ContractError as e:
        code = "missing_manifest" if "missing manifest" in str(e) else "bad_manifest"
        ck.add(Problem(code, c.MANIFEST, str(e)))
        return none
    if m.drop_id != drop.name:
        ck.fail("bad_manifest", c.MANIFEST, f"drop_id {m.drop_id!r} differs from the directory name {drop.name!r}")
        return none
    if m.rows == 0:
        ck.fail("zero_rows", c.MANIFEST, "declares 0 rows")
        return none
    if m.kind == "labeled" and not m.label_names:
        ck.fail("bad_manifest", c.MANIFEST, "a labeled drop needs label_names")
        return none
    for name in m.files:
        if name not in c.DATA_FILES:
            ck.fail("bad_manifest", c.MANIFEST, f"lists unknown file {name[:100]!r}")
    for name in _required(m):
        if name not in entries:
            ck.fail("missing_file", name, "missing file")
        elif name not in m.files:
            ck.fail("bad_manifest", c.MANIFEST, f"no sha256 listed for {name}")
    if m.kind != "labeled" and c.LABELS in m.files:  # never checked, so never trusted: refused
        ck.fail("bad_manifest", c.MANIFEST, f"an {m.kind} drop lists {c.LABELS}: leave it out, or send the "
                                            "drop as kind 'labeled'")
    for name in set(m.files) & set(c.DATA_FILES):
        if name not in entries:
            ck.fail("missing_file", name, "listed in the manifest but missing")
    return m, digest


def _check_schema(ck: _Checker, m: c.Manifest, schema: dict) -> None:
    """One label set and one pair of widths per dataset: a drop that differs would break
    every later training run, so it is refused here with the way out."""
    want = (schema.get("img_dim"), schema.get("txt_dim"), schema.get("label_names"))
    got = (m.img_dim, m.txt_dim, m.label_names)
    if want != got:
        what = []
        if want[:2] != got[:2]:
            what.append(f"dims {got[0]}x{got[1]} instead of {want[0]}x{want[1]}")
        if want[2] != got[2]:
            extra, missing = sorted(set(got[2]) - set(want[2])), sorted(set(want[2]) - set(got[2]))
            what.append(f"{len(got[2])} label names instead of {len(want[2])}"
                        + (f" (new: {extra[:5]})" if extra else "") + (f" (missing: {missing[:5]})" if missing else "")
                        + (" (same names, other order)" if not extra and not missing else ""))
        ck.fail("schema_mismatch", c.MANIFEST, "differs from the dataset's schema: " + "; ".join(what)
                + ". To start a new label set on purpose, start a new dataset (docs/data-contract.md, "
                  "'A new label set').")


def _required(m: c.Manifest) -> list[str]:
    req = [c.IMG, c.TXT, c.IDS] + ([c.LABELS] if m.kind == "labeled" else [])
    return req + ([c.TIMESTAMPS] if c.TIMESTAMPS in m.files else [])


def _check_headers(ck: _Checker, drop: Path, m: c.Manifest) -> dict[str, c.NpyLayout] | None:
    """Shapes, dtypes and sizes from the headers alone, before any data is read or hashed."""
    layouts: dict[str, c.NpyLayout] = {}
    for name in _required(m):
        try:
            layouts[name] = c.npy_layout(drop / name)
        except c.ContractError as e:
            ck.contract_error(name, e)
    if ck.problems:
        return None
    expect = {c.IMG: (2, m.img_dim, np.float32), c.TXT: (2, m.txt_dim, np.float32),
              c.LABELS: (2, m.n_labels, None), c.IDS: (1, None, None), c.TIMESTAMPS: (1, None, np.int64)}
    for name, lay in layouts.items():
        ndim, width, dtype = expect[name]
        if len(lay.shape) != ndim:
            ck.fail("wrong_shape", name, f"expected {ndim}-D, got shape {lay.shape}")
            continue
        if width is not None and lay.shape[1] != width:
            ck.fail("wrong_dim", name, f"expected {width} columns (manifest), got {lay.shape[1]}")
        if lay.shape[0] != m.rows:
            ck.fail("count_mismatch", name, f"has {lay.shape[0]} rows, manifest says {m.rows}")
        if dtype is not None and lay.dtype != dtype:
            ck.fail("wrong_dtype", name, f"dtype {lay.dtype}, expected {np.dtype(dtype).name}")
    if c.LABELS in layouts and layouts[c.LABELS].dtype.kind not in "biuf":
        ck.fail("wrong_dtype", c.LABELS, f"dtype {layouts[c.LABELS].dtype}, expected integers 0/1")
    ids = layouts[c.IDS].dtype
    if ids.kind not in "Uiu":
        ck.fail("wrong_dtype", c.IDS, f"dtype {ids}, expected unicode strings or integers")
    elif ids.kind == "U" and ids.itemsize // 4 > c.MAX_ID_CHARS:
        ck.fail("too_large", c.IDS, f"post ids up to {ids.itemsize // 4} characters wide; the limit is "
                                    f"{c.MAX_ID_CHARS}")
    total = sum(lay.file_bytes for lay in layouts.values())
    if total > c.MAX_DROP_BYTES:
        ck.fail("too_large", "", f"{total} bytes of arrays, over the {c.MAX_DROP_BYTES}-byte limit")
    return None if ck.problems else layouts


def _identity(st: os.stat_result) -> tuple:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink


def _check_checksums(ck: _Checker, drop: Path, m: c.Manifest) -> dict[str, tuple] | None:
    """sha256 through a no-follow, non-blocking fd; returns each file's identity as hashed."""
    before = {}
    for name in _required(m):
        fd = c.open_regular(drop / name)
        with os.fdopen(fd, "rb") as f:
            before[name] = _identity(os.fstat(f.fileno()))
            h = hashlib.sha256()
            while block := f.read(1 << 20):
                h.update(block)
        if h.hexdigest() != m.files[name]:
            ck.fail("checksum_mismatch", name, "sha256 does not match the manifest (changed or corrupted)")
    return None if ck.problems else before


def _check_unchanged(ck: _Checker, drop: Path, before: dict[str, tuple]) -> None:
    for name, ident in before.items():
        try:
            now = _identity(os.lstat(drop / name))
        except FileNotFoundError:
            now = None
        if now != ident:
            ck.fail("changed_during_validation", name, "changed while it was being validated (someone still "
                                                       "writes to it); the checks do not hold for it")


def _check_arrays(ck: _Checker, drop: Path, m: c.Manifest, layouts: dict[str, c.NpyLayout]) -> None:
    arrays = {}
    for name in layouts:
        try:
            arrays[name] = c.load_array(drop / name)
        except c.ContractError as e:
            ck.contract_error(name, e)
    if ck.problems:
        return
    for name in (c.IMG, c.TXT):
        bad = _first_nonfinite(arrays[name])
        if bad is not None:
            ck.fail("non_finite", name, f"NaN or Inf at row {bad[0]}, column {bad[1]}")
    if c.LABELS in arrays:
        _check_labels(ck, arrays[c.LABELS], m.label_names)
    _check_ids(ck, arrays[c.IDS])
    for arr in arrays.values():  # close the maps: their pages must not stay resident
        if (mm := getattr(arr, "_mmap", None)) is not None:
            mm.close()


def _first_nonfinite(arr: np.ndarray) -> tuple[int, int] | None:
    for start in range(0, arr.shape[0], CHUNK_ROWS):
        block = np.asarray(arr[start:start + CHUNK_ROWS])
        bad = ~np.isfinite(block)
        if bad.any():
            r, col = np.argwhere(bad)[0]
            return start + int(r), int(col)
    return None


def _check_labels(ck: _Checker, labels: np.ndarray, names: list[str]) -> None:
    positives = np.zeros(labels.shape[1], np.int64)
    for start in range(0, labels.shape[0], CHUNK_ROWS):
        block = np.asarray(labels[start:start + CHUNK_ROWS])
        bad = (block != 0) & (block != 1)
        if bad.any():
            r, col = np.argwhere(bad)[0]
            ck.fail("non_binary_labels", c.LABELS,
                    f"labels must be 0/1; found {block[r, col]!r} at row {start + r}, column {col}")
            return
        positives += block.sum(axis=0, dtype=np.int64)
    if positives.sum() == 0:
        ck.fail("no_positive_labels", c.LABELS, "no row has any label set: a labeled drop must label something")
        return
    empty = [names[k] for k in np.flatnonzero(positives == 0)]
    if empty:
        ck.warnings.append(f"{ck.drop / c.LABELS}: {len(empty)} of {len(names)} topics have no positive row: "
                           + ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))


def _check_ids(ck: _Checker, ids: np.ndarray) -> None:
    ids = np.asarray(ids)
    if ids.dtype.kind == "U" and (np.char.str_len(ids) == 0).any():
        ck.fail("missing_ids", c.IDS, f"empty post id at row {int(np.argmax(np.char.str_len(ids) == 0))}")
        return
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1]
        ck.fail("duplicate_ids", c.IDS, f"{int((counts - 1).sum())} duplicate post ids, e.g. {dup[0]!r}")


def read_schema(path: Path | None) -> dict | None:
    """The dataset's schema.json (written by the first ingest), or None before there is one."""
    if path is None or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text())


def write_report(report: Report, path: Path) -> None:
    atomic_write_json(path, report.to_json())
