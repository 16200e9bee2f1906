"""Mutations of a good drop for property-based tests of validation (hypothesis strategies).

Used by tests/test_fuzz_validate.py (a bounded run in every `make test`) and
bench/fuzz_validate.py (the long run whose figure is recorded in docs/reliability.md).
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from tasks import contract as c
from tasks.fsutil import sha256_file

FILES = [c.IMG, c.TXT, c.LABELS, c.IDS, c.MANIFEST, c.MARKER]
NPY = [c.IMG, c.TXT, c.LABELS, c.IDS]
FIELDS = ["schema_version", "drop_id", "kind", "rows", "dims", "label_names", "files", "source", "created_at"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)
dtypes = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "<U8", "|O", "|b1", ">f4", "<c8", "|V4"])
shapes = st.lists(st.integers(-3, 10 ** 13), min_size=0, max_size=3).map(tuple)

mutations = st.one_of(
    st.tuples(st.just("flip"), st.sampled_from(FILES), st.integers(0, 20_000), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.sampled_from(FILES), st.integers(0, 20_000)),
    st.tuples(st.just("append"), st.sampled_from(FILES), st.binary(max_size=64)),
    st.tuples(st.just("header"), st.sampled_from(NPY), dtypes, shapes, st.booleans()),
    st.tuples(st.just("field"), st.sampled_from(FIELDS), json_values),
    st.tuples(st.just("drop_field"), st.sampled_from(FIELDS)),
    st.tuples(st.just("swap"), st.sampled_from(FILES + ["extra.npy"]),
              st.sampled_from(["fifo", "symlink", "dangling", "dir", "empty", "missing", "hardlink", "devnull"])),
)
cases = st.tuples(st.lists(mutations, max_size=4), st.booleans())  # (mutations, re-sign the checksums after)


def template(root: Path, rows: int = 40) -> Path:
    rng = np.random.default_rng(0)
    d = root / "drop-0"
    c.write_drop(d, d.name, rng.standard_normal((rows, 8)).astype(np.float32),
                 rng.standard_normal((rows, 6)).astype(np.float32), np.array([f"p{i}" for i in range(rows)]),
                 labels=(rng.random((rows, 4)) < 0.3).astype(np.uint8), source="fuzz")
    return d


def _swap(p: Path, how: str, side: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif os.path.lexists(p):
        p.unlink()
    if how == "fifo":
        os.mkfifo(p)
    elif how == "symlink":
        p.symlink_to(side)
    elif how == "dangling":
        p.symlink_to(side.parent / "nowhere")
    elif how == "dir":
        p.mkdir()
    elif how == "empty":
        p.write_bytes(b"")
    elif how == "hardlink":
        os.link(side, p)
    elif how == "devnull":
        p.symlink_to("/dev/zero")


def _regular(p: Path) -> bool:
    """Only regular files are read or written by the harness (opening a FIFO would hang it)."""
    return os.path.lexists(p) and stat.S_ISREG(os.lstat(p).st_mode)


def apply(d: Path, muts: list, resign: bool, side: Path) -> None:
    """Apply mutations to the drop dir `d`; `side` is a regular file outside it (link targets)."""
    for m in muts:
        kind, name = m[0], (m[1] if m[0] not in ("field", "drop_field") else c.MANIFEST)
        p = d / name
        if kind != "swap" and not _regular(p):
            continue
        if kind == "flip":
            data = bytearray(p.read_bytes())
            if data:
                data[m[2] % len(data)] ^= m[3]
                p.write_bytes(bytes(data))
        elif kind == "truncate":
            with open(p, "r+b") as f:
                f.truncate(m[2] % (p.stat().st_size + 1))
        elif kind == "append":
            with open(p, "ab") as f:
                f.write(m[2])
        elif kind == "header":
            body = p.read_bytes()
            with open(p, "wb") as f:
                header = {"descr": m[2], "fortran_order": m[4], "shape": m[3]}
                try:
                    np.lib.format.write_array_header_1_0(f, header)
                except Exception:  # noqa: BLE001 - numpy refused to write it: keep some bytes
                    f.write(b"\x93NUMPY\x01\x00")
                f.write(body[128:])
        elif kind in ("field", "drop_field"):
            try:
                obj = json.loads(p.read_text())
                if kind == "field":
                    obj[m[1]] = m[2]
                else:
                    obj.pop(m[1], None)
                p.write_text(json.dumps(obj, allow_nan=True))
            except Exception:  # noqa: BLE001 - manifest already broken or not a dict
                pass
        elif kind == "swap":
            _swap(p, m[2], side)
    if resign and _regular(d / c.MANIFEST):
        try:
            obj = json.loads((d / c.MANIFEST).read_text())
            for n in list(obj.get("files", {})):
                f = d / n
                if _regular(f):
                    obj["files"][n] = {"sha256": sha256_file(f)}
            (d / c.MANIFEST).write_text(json.dumps(obj, allow_nan=True))
        except Exception:  # noqa: BLE001
            pass


def snapshot(d: Path) -> dict:
    """Names, kinds and bytes of a drop dir without opening anything but regular files."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = os.lstat(p)
        out[str(p.relative_to(d))] = (st.st_mode, st.st_size, sha256_file(p) if stat.S_ISREG(st.st_mode) else None)
    return out


def run_case(validate, base: Path, work: Path, muts: list, resign: bool) -> tuple[object, float]:
    """Copy the template, mutate it, validate it; returns (report, seconds). Checks nothing:
    the callers assert."""
    d = work / base.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(base, d)
    side = work / "side.npy"
    shutil.copyfile(base / c.IMG, side)
    apply(d, muts, resign, side)
    before = snapshot(d)
    t0 = time.monotonic()
    report = validate(d)
    secs = time.monotonic() - t0
    assert snapshot(d) == before, "validation modified the drop"
    return report, secs
