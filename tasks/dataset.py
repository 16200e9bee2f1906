"""Assemble a training set from one or more validated drops, split by post-id hash."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from tasks import contract as c
from tasks import split as sp


@dataclasses.dataclass
class Dataset:
    x: np.ndarray             # (N, img_dim + txt_dim) float32: both views side by side, read once
    img_dim: int
    labels: np.ndarray
    ids: np.ndarray
    split: np.ndarray
    label_names: list[str]
    version: str              # content hash of the drops used: logged as the data version
    drops: list[str]

    @property
    def txt_dim(self) -> int:
        return self.x.shape[1] - self.img_dim

    def part_x(self, which: int) -> tuple[np.ndarray, np.ndarray]:
        """(fused features, labels) of one split: what training consumes."""
        m = self.split == which
        return self.x[m], self.labels[m]

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(img, txt, labels) of one split; img and txt are views into one copy."""
        x, y = self.part_x(which)
        return x[:, :self.img_dim], x[:, self.img_dim:], y


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


def load(paths: list[Path], seed: int = 42) -> Dataset:
    drops = [c.open_drop(p) for p in find_drops(paths)]
    first = drops[0].manifest
    for d in drops:
        m = d.manifest
        if m.kind != "labeled":
            raise c.ContractError(f"{d.path}: unlabeled drop cannot be used for training")
        if (m.img_dim, m.txt_dim, m.label_names) != (first.img_dim, first.txt_dim, first.label_names):
            raise c.ContractError(f"{d.path}: dims or label names differ from {drops[0].path}")
    ids = np.concatenate([np.asarray(d.ids).astype(str) for d in drops])
    # A later drop re-labels a post it repeats: keep each id's last occurrence.
    _, last_rev = np.unique(ids[::-1], return_index=True)
    keep = None if len(last_rev) == len(ids) else np.sort(len(ids) - 1 - last_rev)

    x = np.empty((len(ids), first.img_dim + first.txt_dim), dtype=np.float32)
    start = 0
    for d in drops:  # fill from the memory maps drop by drop: one read, no intermediate copies
        n = d.manifest.rows
        x[start:start + n, :first.img_dim] = d.img
        x[start:start + n, first.img_dim:] = d.txt
        start += n
    labels = np.concatenate([np.asarray(d.labels, dtype=np.float32) for d in drops])
    if keep is not None:
        x, labels, ids = x[keep], labels[keep], ids[keep]
    h = hashlib.sha256()
    for d in drops:
        h.update(repr(sorted(d.manifest.files.items())).encode())
    return Dataset(x=x, img_dim=first.img_dim, labels=labels, ids=ids, split=sp.assign(ids, seed),
                   label_names=first.label_names, version=h.hexdigest()[:16], drops=[str(d.path) for d in drops])
