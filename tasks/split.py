"""Train/val/test assignment: a seeded hash of post_id, topped up so that rare topics are
represented in val and test.

The hash alone (70/15/15) is stable: a post's split depends only on its id and the seed. But
a topic with a handful of positives often gets none in test or val (issue 12: 11 of 90 topics
had no test rows), so its threshold and its F1 mean nothing. `assign_drops` keeps the hash
split and adds one rule, applied drop by drop in the dataset's order (drop ids sort in arrival
order, as `window_drops` assumes too):

  after a drop's new posts take their hash split, every topic with n positives so far should
  have at least min(round(0.15 n), MIN_EVAL) of them in test and as many in val; where it has
  fewer, the drop's own train posts of that topic move to test (then val), those whose hash is
  nearest the val/test range first, rarest topic first.

A drop's posts are placed knowing only the drops before it, so adding a drop never moves an
old post; a post sent again keeps the split of its first occurrence. A topic with fewer than 4
positives keeps the hash split (moving one of 3 would leave too few to learn from).
"""
from __future__ import annotations

import hashlib

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
FRACTIONS = (0.70, 0.15)  # train, val; test takes the rest
MIN_EVAL = 5  # the top-up asks for at most this many positives of a topic in val and in test


def uniform(ids: np.ndarray, seed: int = 42) -> np.ndarray:
    """A seeded hash of each id, uniform in [0, 1)."""
    key = str(seed).encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=key).digest(), "big")
                        for i in ids), dtype=np.uint64, count=len(ids)) / float(2 ** 64)


def by_hash(u: np.ndarray, fractions: tuple[float, float] = FRACTIONS) -> np.ndarray:
    out = np.full(len(u), TEST, dtype=np.int8)
    out[u < fractions[0] + fractions[1]] = VAL
    out[u < fractions[0]] = TRAIN
    return out


def assign(ids: np.ndarray, seed: int = 42, fractions: tuple[float, float] = FRACTIONS) -> np.ndarray:
    """The plain hash split: an int8 array of TRAIN/VAL/TEST, one per id (70/15/15 by default)."""
    return by_hash(uniform(ids, seed), fractions)


def wanted(n: np.ndarray, fraction: float) -> np.ndarray:
    """Positives of a topic with n positives that val (or test) should hold."""
    return np.minimum(np.floor(fraction * n + 0.5), MIN_EVAL).astype(np.int64)


def assign_drops(ids: np.ndarray, labels: np.ndarray, drop: np.ndarray, seed: int = 42,
                 fractions: tuple[float, float] = FRACTIONS) -> np.ndarray:
    """The split of every row of a dataset (rows in drop order, `drop` = each row's drop number,
    ascending): the hash split with the rare-topic top-up of the module docstring."""
    ids = np.asarray(ids)
    _, first_of_id, inverse = np.unique(ids, return_index=True, return_inverse=True)
    first = np.sort(first_of_id)  # the rows that are an id's first occurrence, in row order
    u = uniform(ids[first], seed)
    split = by_hash(u, fractions)
    y = np.asarray(labels)[first]  # uint8 as stored (an int64 copy of a long history would be 8x the memory)
    counts = np.zeros((3, y.shape[1]), np.int64)
    eval_fraction = {VAL: fractions[1], TEST: 1 - fractions[0] - fractions[1]}
    for k in np.unique(drop[first]):
        rows = np.flatnonzero(drop[first] == k)
        for s in (TRAIN, VAL, TEST):
            counts[s] += y[rows[split[rows] == s]].sum(0, dtype=np.int64)
        n = counts.sum(0)
        for c in np.argsort(n, kind="stable"):
            for target in (TEST, VAL):
                deficit = wanted(n[c], eval_fraction[target]) - counts[target, c]
                if deficit <= 0:
                    continue
                cand = rows[(split[rows] == TRAIN) & (y[rows, c] > 0)]
                take = cand[np.argsort(-u[cand], kind="stable")[:deficit]]
                split[take] = target
                moved = y[take].sum(0, dtype=np.int64)
                counts[TRAIN] -= moved
                counts[target] += moved
    out = np.empty(len(ids), np.int8)
    out[first] = split
    return out[first_of_id[inverse.ravel()]]  # every row: the split of its id's first occurrence
