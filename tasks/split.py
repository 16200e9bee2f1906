"""Train/val/test assignment by a seeded hash of post_id.

A post's split depends only on its id and the seed, never on which drops exist, so adding a
drop never moves an old post and the test set stays comparable across model versions.
"""
from __future__ import annotations

import hashlib

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


def assign(ids: np.ndarray, seed: int = 42, fractions: tuple[float, float] = (0.70, 0.15)) -> np.ndarray:
    """Return an int8 array of TRAIN/VAL/TEST, one per id (70/15/15 by default)."""
    key = str(seed).encode()
    u = np.fromiter((int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big")
                     for i in ids), dtype=np.uint64, count=len(ids)) / float(2 ** 64)
    out = np.full(len(ids), TEST, dtype=np.int8)
    out[u < fractions[0] + fractions[1]] = VAL
    out[u < fractions[0]] = TRAIN
    return out
