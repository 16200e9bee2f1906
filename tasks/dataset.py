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
    img: np.ndarray
    txt: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    split: np.ndarray
    label_names: list[str]
    version: str              # content hash of the drops used: logged as the data version
    drops: list[str]

    @property
    def img_dim(self) -> int:
        return self.img.shape[1]

    @property
    def txt_dim(self) -> int:
        return self.txt.shape[1]

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.split == which
        return self.img[m], self.txt[m], self.labels[m]


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
    keep = np.sort(len(ids) - 1 - last_rev)
    cat = lambda attr, dtype: np.concatenate([np.asarray(getattr(d, attr), dtype=dtype) for d in drops])[keep]  # noqa: E731
    h = hashlib.sha256()
    for d in drops:
        h.update(repr(sorted(d.manifest.files.items())).encode())
    return Dataset(img=cat("img", np.float32), txt=cat("txt", np.float32), labels=cat("labels", np.float32),
                   ids=ids[keep], split=sp.assign(ids[keep], seed), label_names=first.label_names,
                   version=h.hexdigest()[:16], drops=[str(d.path) for d in drops])
