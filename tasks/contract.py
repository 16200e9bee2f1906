"""The data contract for embedding drops (docs/data-contract.md is the prose version).

A drop is a directory <drop_id>/ holding:
  img_emb.npy   (N, img_dim) float32
  txt_emb.npy   (N, txt_dim) float32
  labels.npy    (N, n_labels) uint8 0/1        -- labeled drops only
  ids.npy       (N,) unicode strings, unique
  timestamps.npy (N,) int64 unix seconds        -- optional
  manifest.json  schema version, rows, dims, label names, sha256 of every file, source
  _SUCCESS       written last; a drop without it is incomplete
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np

from tasks.fsutil import atomic_dir, atomic_write_json, sha256_file
from tasks.layout import DATA_FILES, DROP_ID_RE, IDS, IMG, LABELS, MANIFEST, MARKER, TIMESTAMPS, TXT  # noqa: F401

SCHEMA_VERSION = 1
WARCOV_IMG_DIM, WARCOV_TXT_DIM, WARCOV_N_LABELS = 512, 768, 50
KINDS = ("labeled", "unlabeled")
LABEL_NAME_RE = re.compile(r"[^\x00-\x1f\x7f/\\]{1,128}")  # printable, no path separators

# Bounds on what a drop may declare, so a hostile one is refused before it costs time or
# memory (docs/data-contract.md). Each refusal names the bound.
MAX_MANIFEST_BYTES = 1 << 20
MAX_JSON_DEPTH = 8
MAX_ROWS = 50_000_000
MAX_DIM = 65_536
MAX_LABELS = 10_000
MAX_ID_CHARS = 256
MAX_DROP_BYTES = 256 << 30
MAX_NPY_HEADER = 65_536


def valid_drop_id(name: str) -> bool:
    return isinstance(name, str) and DROP_ID_RE.fullmatch(name) is not None


class ContractError(ValueError):
    """A drop breaks the contract. The message names the file and the problem."""


def default_label_names(n: int) -> list[str]:
    return [f"topic_{i:02d}" for i in range(n)]


@dataclasses.dataclass
class Manifest:
    drop_id: str
    kind: str
    rows: int
    img_dim: int = WARCOV_IMG_DIM
    txt_dim: int = WARCOV_TXT_DIM
    label_names: list[str] = dataclasses.field(default_factory=lambda: default_label_names(WARCOV_N_LABELS))
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> sha256
    source: str = "unknown"
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "drop_id": self.drop_id,
            "kind": self.kind,
            "rows": self.rows,
            "dims": {"img": self.img_dim, "txt": self.txt_dim},
            "label_names": self.label_names,
            "files": {k: {"sha256": v} for k, v in sorted(self.files.items())},
            "source": self.source,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = MANIFEST) -> "Manifest":
        def need(d: Any, key: str, typ: type | tuple[type, ...]) -> Any:
            if not isinstance(d, dict) or key not in d:
                raise ContractError(f"{where}: missing field '{key}'")
            val = d[key]
            if not isinstance(val, typ) or isinstance(val, bool):
                raise ContractError(f"{where}: field '{key}' has the wrong type ({type(val).__name__})")
            return val

        version = need(obj, "schema_version", int)
        if version != SCHEMA_VERSION:
            raise ContractError(f"{where}: unsupported schema_version {version} (this code reads {SCHEMA_VERSION})")
        drop_id = need(obj, "drop_id", str)
        if not valid_drop_id(drop_id):
            raise ContractError(f"{where}: drop_id {drop_id[:200]!r} is not a valid drop id")
        kind = need(obj, "kind", str)
        if kind not in KINDS:
            raise ContractError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
        rows = need(obj, "rows", int)
        dims = need(obj, "dims", dict)
        img_dim, txt_dim = need(dims, "img", int), need(dims, "txt", int)
        names = obj.get("label_names", default_label_names(WARCOV_N_LABELS))  # absent: WarCov's 50 topics
        if names == []:  # a first drop like that would set a made-up schema for the whole dataset
            raise ContractError(f"{where}: label_names is empty: name the topics, or leave the key out for "
                                f"WarCov's {WARCOV_N_LABELS} default names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ContractError(f"{where}: label_names must be a list of strings")
        if len(names) > MAX_LABELS:
            raise ContractError(f"{where}: {len(names)} label names, over the limit of {MAX_LABELS}")
        if bad := next((n for n in names if not LABEL_NAME_RE.fullmatch(n)), None):
            raise ContractError(f"{where}: label name {bad[:200]!r} must be 1-128 printable characters "
                                "without '/' or '\\'")
        if len(set(names)) != len(names):
            raise ContractError(f"{where}: label_names has duplicates")
        files_obj = need(obj, "files", dict)
        files = {}
        for name, entry in files_obj.items():
            sha = entry.get("sha256") if isinstance(entry, dict) else None
            if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ContractError(f"{where}: files['{name}'] has no valid sha256")
            files[name] = sha
        if rows < 0 or img_dim <= 0 or txt_dim <= 0:
            raise ContractError(f"{where}: rows and dims must be positive")
        if rows > MAX_ROWS or img_dim > MAX_DIM or txt_dim > MAX_DIM:
            raise ContractError(f"{where}: rows ({rows}) or dims ({img_dim}, {txt_dim}) over the limits "
                                f"({MAX_ROWS} rows, {MAX_DIM} columns)")
        for key in ("source", "created_at"):
            if len(str(obj.get(key, ""))) > 1024:
                raise ContractError(f"{where}: field '{key}' is longer than 1024 characters")
        return cls(drop_id=drop_id, kind=kind, rows=rows, img_dim=img_dim, txt_dim=txt_dim,
                   label_names=names, files=files, source=str(obj.get("source", "unknown")),
                   created_at=str(obj.get("created_at", "")), schema_version=version)


def open_regular(path: Path) -> int:
    """An fd for a regular file, opened without following a symlink and without blocking (a
    FIFO or a device never hangs the caller). Raises ContractError naming the file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ContractError(f"{path}: missing file") from None
    except OSError as e:
        if os.path.islink(path):
            raise ContractError(f"{path}: is a symlink; drops must contain regular files") from None
        raise ContractError(f"{path}: cannot be opened ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ContractError(f"{path}: not a regular file ({file_kind(st.st_mode)})")
    return fd


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def json_depth(obj: Any) -> int:
    """Nesting depth, iteratively (a recursive walk is what a deep document attacks)."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            depth = max(depth, d)
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))
    return depth


def read_manifest(drop: Path) -> Manifest:
    return read_manifest_with_digest(drop)[0]


def read_manifest_with_digest(drop: Path) -> tuple[Manifest, str]:
    """The manifest, and the sha256 of the very bytes it was parsed from (so a later step can
    check it works on the manifest that was validated)."""
    path = Path(drop) / MANIFEST
    if not os.path.lexists(path):
        raise ContractError(f"{path}: missing manifest")
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ContractError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ContractError(f"{path}: invalid JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and ints past Python's digit limit
        raise ContractError(f"{path}: invalid JSON ({str(e)[:200]})") from None
    if json_depth(obj) > MAX_JSON_DEPTH:
        raise ContractError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    return Manifest.from_json(obj, where=str(path)), hashlib.sha256(raw).hexdigest()


@dataclasses.dataclass(frozen=True)
class NpyLayout:
    dtype: np.dtype
    shape: tuple[int, ...]
    header_bytes: int
    file_bytes: int

    @property
    def data_bytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * self.dtype.itemsize


def npy_layout(path: Path) -> NpyLayout:
    """A .npy file's dtype and shape from its header alone, checked against the file's size.
    No data is read, so a lying header (a huge shape, a truncated body) costs nothing."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if head[:6] != b"\x93NUMPY":
            if head[:1] == b"\x80":  # the pickle protocol's first byte
                raise ContractError(f"{path}: holds pickled Python objects, which are refused")
            raise ContractError(f"{path}: not a .npy file (no NumPy magic; CSV, text or another format?)")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=MAX_NPY_HEADER)
        except Exception as e:  # noqa: BLE001 - numpy's parser raises ValueError, SyntaxError, tokenize errors...
            raise ContractError(f"{path}: not a readable .npy file (bad header: {type(e).__name__}: "
                                f"{str(e)[:200]})") from None
        header = f.tell()
    if dtype.hasobject:
        raise ContractError(f"{path}: holds pickled Python objects, which are refused")
    if any(d < 0 for d in shape):
        raise ContractError(f"{path}: not a readable .npy file (negative dimension in shape {shape})")
    if fortran and len(shape) > 1:
        raise ContractError(f"{path}: Fortran-ordered arrays are refused; save it C-ordered")
    layout = NpyLayout(dtype, tuple(shape), header, size)
    if header + layout.data_bytes != size:
        raise ContractError(f"{path}: not a readable .npy file: {size} bytes, its header promises "
                            f"{header + layout.data_bytes} (truncated, padded or a lying header)")
    if layout.data_bytes > MAX_DROP_BYTES:
        raise ContractError(f"{path}: {layout.data_bytes} bytes of data, over the {MAX_DROP_BYTES}-byte limit")
    return layout


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """np.load without pickle; every failure becomes a ContractError naming the file."""
    path = Path(path)
    os.close(open_regular(path))  # no symlinks, FIFOs or devices: never blocks
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if "pickle" in msg or "Object arrays" in msg or "Python objects" in msg:
            raise ContractError(f"{path}: holds pickled Python objects, which are refused") from None
        raise ContractError(f"{path}: not a readable .npy file ({msg})") from None
    except (OSError, EOFError) as e:
        raise ContractError(f"{path}: not a readable .npy file, perhaps truncated ({e})") from None


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) copied out of a memory map that is closed again right away, so the
    pages read for one chunk do not stay in the resident set: flat memory for any drop size."""
    arr = load_array(path)
    try:
        return np.array(arr[start:stop])
    finally:
        mm = getattr(arr, "_mmap", None)
        del arr
        if mm is not None:
            mm.close()


@dataclasses.dataclass
class Drop:
    """A drop's arrays (memory-mapped: slicing reads only what it needs)."""
    path: Path
    manifest: Manifest
    img: np.ndarray
    txt: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None = None
    timestamps: np.ndarray | None = None


def open_drop(path: Path) -> Drop:
    """Open a drop that has passed validation (call tasks.validate first on untrusted input)."""
    path = Path(path)
    m = read_manifest(path)
    opt = lambda name: load_array(path / name) if name in m.files else None  # noqa: E731
    return Drop(path=path, manifest=m, img=load_array(path / IMG), txt=load_array(path / TXT),
                ids=load_array(path / IDS), labels=opt(LABELS), timestamps=opt(TIMESTAMPS))


class DropWriter:
    """Write a drop in row chunks with bounded memory, atomically, marker last.

    with DropWriter(out, "d1", rows=N, kind="labeled") as w:
        w.write(img_chunk, txt_chunk, ids_chunk, labels_chunk, ts_chunk)
    """

    def __init__(self, target: Path, drop_id: str, rows: int, kind: str = "labeled",
                 img_dim: int = WARCOV_IMG_DIM, txt_dim: int = WARCOV_TXT_DIM,
                 label_names: list[str] | None = None, with_timestamps: bool = False,
                 source: str = "unknown", id_width: int = 32):
        if not valid_drop_id(drop_id):
            raise ContractError(f"drop id {drop_id!r}: use letters, digits, '.', '_' or '-'")
        if kind not in KINDS:
            raise ContractError(f"kind must be one of {KINDS}")
        self.target = Path(target)
        self.manifest = Manifest(drop_id=drop_id, kind=kind, rows=rows, img_dim=img_dim, txt_dim=txt_dim,
                                 label_names=label_names or default_label_names(WARCOV_N_LABELS),
                                 source=source)
        self.with_timestamps = with_timestamps
        self.id_width = id_width
        self._pos = 0

    def __enter__(self) -> "DropWriter":
        self._ctx = atomic_dir(self.target)
        self.tmp = self._ctx.__enter__()
        m, mm = self.manifest, np.lib.format.open_memmap
        n = m.rows
        if n <= 0:
            raise ContractError(f"{self.target}: a drop needs at least one row")
        self._arrays = {IMG: mm(self.tmp / IMG, "w+", np.float32, (n, m.img_dim)),
                        TXT: mm(self.tmp / TXT, "w+", np.float32, (n, m.txt_dim)),
                        IDS: mm(self.tmp / IDS, "w+", f"<U{self.id_width}", (n,))}
        if m.kind == "labeled":
            self._arrays[LABELS] = mm(self.tmp / LABELS, "w+", np.uint8, (n, m.n_labels))
        if self.with_timestamps:
            self._arrays[TIMESTAMPS] = mm(self.tmp / TIMESTAMPS, "w+", np.int64, (n,))
        return self

    def write(self, img: np.ndarray, txt: np.ndarray, ids: np.ndarray,
              labels: np.ndarray | None = None, timestamps: np.ndarray | None = None) -> None:
        k = len(ids)
        sl = slice(self._pos, self._pos + k)
        if sl.stop > self.manifest.rows:
            raise ContractError(f"{self.target}: more rows written than the {self.manifest.rows} declared")
        if k and int(np.char.str_len(np.asarray(ids).astype(str)).max()) > self.id_width:
            raise ContractError(f"{self.target}: a post id is longer than {self.id_width} characters")
        parts = {IMG: img, TXT: txt, IDS: ids, LABELS: labels, TIMESTAMPS: timestamps}
        for name, arr in self._arrays.items():
            if parts[name] is None:
                raise ContractError(f"{self.target}: {name} chunk missing")
            arr[sl] = parts[name]
        self._pos = sl.stop

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                if self._pos != self.manifest.rows:
                    raise ContractError(f"{self.target}: {self._pos} rows written, {self.manifest.rows} declared")
                for arr in self._arrays.values():
                    arr.flush()
                    del arr
                self._arrays.clear()
                self.manifest.files = {n: sha256_file(self.tmp / n) for n in sorted(DATA_FILES)
                                       if (self.tmp / n).exists()}
                self.manifest.created_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                atomic_write_json(self.tmp / MANIFEST, self.manifest.to_json())
                (self.tmp / MARKER).write_text("")
        except BaseException:
            self._ctx.__exit__(*__import__("sys").exc_info())
            raise
        return bool(self._ctx.__exit__(exc_type, exc, tb))


def write_drop(target: Path, drop_id: str, img: np.ndarray, txt: np.ndarray, ids: np.ndarray,
               labels: np.ndarray | None = None, timestamps: np.ndarray | None = None,
               label_names: list[str] | None = None, source: str = "unknown") -> Manifest:
    """Write in-memory arrays as one drop (convenience for importers and tests)."""
    ids = np.asarray(ids).astype(str)
    n_labels = labels.shape[1] if labels is not None else WARCOV_N_LABELS
    w = DropWriter(target, drop_id, rows=len(ids), kind="labeled" if labels is not None else "unlabeled",
                   img_dim=img.shape[1], txt_dim=txt.shape[1],
                   label_names=label_names or default_label_names(n_labels),
                   with_timestamps=timestamps is not None, source=source,
                   id_width=max(1, max((len(s) for s in ids), default=1)))
    with w:
        w.write(img, txt, ids, labels, timestamps)
    return w.manifest
