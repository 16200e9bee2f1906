"""Assemble a training set from one or more validated drops, split by post-id hash.

The embeddings are never all in memory. A Dataset holds what is small (ids, labels, split,
and where each kept row lives: its drop and position) and reads embeddings in storage blocks
through `contract.read_rows`, whose pages do not stay resident. So memory is bounded by the
block size, not by the history of drops: training streams shuffled groups of blocks
(tasks.train), evaluation predicts block by block, and `part(..., limit=)` draws a bounded
sample for what needs rows in memory (the LogReg baseline).
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Iterator

import numpy as np

from tasks import contract as c
from tasks import split as sp

BLOCK = 8192  # rows per read: 8192 x 1280 float32 = 42 MB


@dataclasses.dataclass
class Dataset:
    paths: list[Path]         # the drops, in order
    img_dim: int
    txt_dim: int
    label_names: list[str]
    ids: np.ndarray           # (N,) of the kept rows (a repeated post: its last occurrence)
    labels: np.ndarray        # (N, L) uint8
    split: np.ndarray         # (N,) TRAIN/VAL/TEST
    src: np.ndarray           # (N,) index into paths
    pos: np.ndarray           # (N,) row in that drop
    version: str              # content hash of the drops used: logged as the data version

    @property
    def drops(self) -> list[str]:
        return [str(p) for p in self.paths]

    @property
    def dim(self) -> int:
        return self.img_dim + self.txt_dim

    def index(self, which: int) -> np.ndarray:
        """Kept-row indices of one split, ascending (= storage order)."""
        return np.flatnonzero(self.split == which)

    def read(self, idx: np.ndarray) -> np.ndarray:
        """Fused embeddings (len(idx), img_dim + txt_dim) of kept rows `idx` (ascending),
        read in spans of at most BLOCK rows."""
        idx = np.asarray(idx)
        out = np.empty((len(idx), self.dim), np.float32)
        src, pos = self.src[idx], self.pos[idx]
        i = 0
        while i < len(idx):
            k, start = src[i], pos[i]
            end = i + int(np.searchsorted(src[i:], k, side="right"))  # this drop's rows
            j = i + int(np.searchsorted(pos[i:end], start + BLOCK))  # pos ascends within a drop
            stop = pos[j - 1] + 1
            rel = pos[i:j] - start
            out[i:j, :self.img_dim] = c.read_rows(self.paths[k] / c.IMG, start, stop)[rel]
            out[i:j, self.img_dim:] = c.read_rows(self.paths[k] / c.TXT, start, stop)[rel]
            i = j
        return out

    def blocks(self, which: int) -> list[np.ndarray]:
        """The split's row indices cut at storage-block edges: each block is one read."""
        idx = self.index(which)
        key = self.src[idx].astype(np.int64) * (1 << 40) + self.pos[idx] // BLOCK
        return np.split(idx, np.flatnonzero(np.diff(key)) + 1) if len(idx) else []

    def iter_xy(self, which: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(fused x, float32 labels) of one split, block by block."""
        for b in self.blocks(which):
            yield self.read(b), self.labels[b].astype(np.float32)

    def sample(self, which: int, limit: int | None = None, seed: int = 0) -> np.ndarray:
        """Row indices of one split: all of them, or a seeded sample of at most `limit`."""
        idx = self.index(which)
        if limit is not None and len(idx) > limit:
            idx = np.sort(np.random.default_rng(seed).choice(idx, limit, replace=False))
        return idx

    def part(self, which: int, limit: int | None = None, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(img, txt, float32 labels) of one split in memory, or of a sample of at most `limit` rows."""
        idx = self.sample(which, limit, seed)
        x = self.read(idx)
        return x[:, :self.img_dim], x[:, self.img_dim:], self.labels[idx].astype(np.float32)


def find_drops(paths: list[Path]) -> list[Path]:
    """Each path is a drop (has manifest.json) or a folder of drops (sorted by name)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / c.MANIFEST).exists():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(d for d in p.iterdir() if (d / c.MANIFEST).exists()))
        else:
            raise c.ContractError(f"{p}: neither a drop nor a folder of drops")
    if not out:
        raise c.ContractError(f"no drops found in {', '.join(map(str, paths))}")
    return out


def version_of(manifests: list[c.Manifest]) -> str:
    """The data version: a hash of the drops' data checksums, in order."""
    h = hashlib.sha256()
    for m in manifests:
        h.update(repr(sorted(m.files.items())).encode())
    return h.hexdigest()[:16]


def load(paths: list[Path], seed: int = 42, last: int = 0) -> Dataset:
    """The drops under `paths` (only the `last` N of them, in name order, when last > 0).

    The split is drawn over every drop found, window or not (tasks.split.assign_drops), so a
    post has one split whatever window a run trains on, and a champion trained on another
    window is never scored on rows it trained on."""
    drops = [c.open_drop(p) for p in find_drops(paths)]
    first = drops[0].manifest
    for d in drops:
        m = d.manifest
        if m.kind != "labeled":
            raise c.ContractError(f"{d.path}: unlabeled drop cannot be used for training")
        if (m.img_dim, m.txt_dim, m.label_names) != (first.img_dim, first.txt_dim, first.label_names):
            raise c.ContractError(f"{d.path}: dims or label names differ from {drops[0].path}")
    ids = np.concatenate([np.asarray(d.ids).astype(str) for d in drops])
    labels = np.concatenate([np.asarray(d.labels, dtype=np.uint8) for d in drops])
    src = np.concatenate([np.full(d.manifest.rows, k, np.int32) for k, d in enumerate(drops)])
    pos = np.concatenate([np.arange(d.manifest.rows, dtype=np.int64) for d in drops])
    split = sp.assign_drops(ids, labels, src, seed)
    if 0 < last < len(drops):
        skip = len(drops) - last
        keep = src >= skip
        drops = drops[skip:]
        ids, labels, split, src, pos = ids[keep], labels[keep], split[keep], src[keep] - skip, pos[keep]
    # A later drop re-labels a post it repeats: keep each id's last occurrence.
    _, last_rev = np.unique(ids[::-1], return_index=True)
    if len(last_rev) != len(ids):
        keep = np.sort(len(ids) - 1 - last_rev)
        ids, labels, split, src, pos = ids[keep], labels[keep], split[keep], src[keep], pos[keep]
    return Dataset(paths=[d.path for d in drops], img_dim=first.img_dim, txt_dim=first.txt_dim,
                   label_names=first.label_names, ids=ids, labels=labels, split=split,
                   src=src, pos=pos, version=version_of([d.manifest for d in drops]))
