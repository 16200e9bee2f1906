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
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from tasks.fsutil import atomic_dir, atomic_write_json, sha256_file

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MARKER = "_SUCCESS"
IMG, TXT, LABELS, IDS, TIMESTAMPS = "img_emb.npy", "txt_emb.npy", "labels.npy", "ids.npy", "timestamps.npy"
DATA_FILES = (IMG, TXT, LABELS, IDS, TIMESTAMPS)
WARCOV_IMG_DIM, WARCOV_TXT_DIM, WARCOV_N_LABELS = 512, 768, 50
KINDS = ("labeled", "unlabeled")
# A drop id becomes a directory name under several roots: keep it boring.
DROP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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
        kind = need(obj, "kind", str)
        if kind not in KINDS:
            raise ContractError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
        rows = need(obj, "rows", int)
        dims = need(obj, "dims", dict)
        img_dim, txt_dim = need(dims, "img", int), need(dims, "txt", int)
        names = obj.get("label_names") or default_label_names(WARCOV_N_LABELS)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ContractError(f"{where}: label_names must be a list of strings")
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
        return cls(drop_id=drop_id, kind=kind, rows=rows, img_dim=img_dim, txt_dim=txt_dim,
                   label_names=names, files=files, source=str(obj.get("source", "unknown")),
                   created_at=str(obj.get("created_at", "")), schema_version=version)


def read_manifest(drop: Path) -> Manifest:
    path = Path(drop) / MANIFEST
    if not path.is_file():
        raise ContractError(f"{path}: missing manifest")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ContractError(f"{path}: invalid JSON ({e})") from None
    return Manifest.from_json(obj, where=str(path))


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """np.load without pickle; every failure becomes a ContractError naming the file."""
    path = Path(path)
    if path.is_symlink():
        raise ContractError(f"{path}: is a symlink; drops must contain regular files")
    if not path.is_file():
        raise ContractError(f"{path}: missing file")
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
        if not DROP_ID_RE.match(drop_id):
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
                for name, arr in self._arrays.items():
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
