"""Multi-label metrics and per-class threshold tuning (scikit-learn underneath).

exact_match_accuracy: the share of posts whose whole 50-bit label vector is right (subset
accuracy). label_accuracy: the share of single (post, topic) bits that are right. The seed
reported the second as "accuracy"; with 1-18% prevalence it is ~0.95 for any model.

Macro averages (F1, precision, recall, PR-AUC) are taken over the same classes: those with at
least one positive among the rows scored. The others are listed (`unsupported_labels`), not
counted as 0 by one metric and left out by another.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_fscore_support


def compute(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray | float,
            label_names: list[str]) -> dict:
    y_true = np.asarray(y_true).astype(np.int8)
    y_pred = (proba >= np.asarray(thresholds, dtype=np.float32)).astype(np.int8)
    out: dict = {"rows": int(len(y_true)),
                 "exact_match_accuracy": float(accuracy_score(y_true, y_pred)),
                 "label_accuracy": float((y_true == y_pred).mean())}
    has_pos = y_true.sum(axis=0) > 0
    for avg in ("macro", "micro"):
        labels = np.flatnonzero(has_pos) if avg == "macro" and has_pos.any() else None
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    out["unsupported_labels"] = [n for n, ok in zip(label_names, has_pos) if not ok]
    out["macro_pr_auc"] = float(average_precision_score(y_true[:, has_pos], proba[:, has_pos], average="macro")) \
        if has_pos.any() else 0.0
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    out["per_class"] = [{"label": n, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                         "support": int(s[i])} for i, n in enumerate(label_names)]
    return out


def macro_f1(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray | float) -> float:
    """Macro-F1 over the classes with positives among these rows (as in `compute`; counted
    here with numpy: training calls it twice an epoch)."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = proba >= np.asarray(thresholds, dtype=np.float32)
    has_pos = y_true.any(axis=0)
    if not has_pos.any():
        return 0.0
    tp = (y_true & y_pred).sum(0)[has_pos]
    fp = (~y_true & y_pred).sum(0)[has_pos]
    fn = (y_true & ~y_pred).sum(0)[has_pos]
    return float(np.mean(2 * tp / (2 * tp + fp + fn)))


MIN_POSITIVES = 5   # a class with fewer validation positives takes the global threshold
PRIOR = 10          # shrinkage: a class's own threshold weighs n / (n + PRIOR) for n positives
THR_MIN = 0.01      # no threshold below this: a constant-zero score never predicts every row


def best_f1_thresholds(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per column, the score threshold that maximises F1 (the lowest of equal maxima, as the
    first argmax over precision_recall_curve's ascending thresholds gives). One sort for all
    columns instead of a precision_recall_curve each: training scores every epoch with it."""
    y, p = np.asarray(y).reshape(len(y), -1), np.asarray(p).reshape(len(p), -1)
    order = np.argsort(-p, axis=0)  # ties need no order: only the ends of runs of equal scores count
    ps = np.take_along_axis(p, order, 0)
    tp = np.cumsum(np.take_along_axis(y, order, 0), 0, dtype=np.int64)
    fp = np.arange(1, len(p) + 1)[:, None] - tp
    f1 = 2 * tp / np.maximum(tp + fp + tp[-1], 1)  # 2TP / (2TP + FP + FN)
    f1[:-1][ps[:-1] == ps[1:]] = -1  # a cut inside a run of equal scores is no threshold
    best = len(p) - 1 - np.argmax(f1[::-1], axis=0)
    return ps[best, np.arange(p.shape[1])]


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold that maximises F1 on these (flattened) rows."""
    return float(best_f1_thresholds(np.ravel(y)[:, None], np.ravel(p)[:, None])[0])


@dataclasses.dataclass
class Tuned:
    thresholds: np.ndarray      # (L,) float32
    methods: list[str]          # per class: "shrunk" (own threshold pulled toward global) or "global"
    support: list[int]          # validation positives per class
    global_threshold: float


def tune_thresholds(y_true: np.ndarray, proba: np.ndarray, *, min_positives: int = MIN_POSITIVES,
                    prior: float = PRIOR) -> Tuned:
    """Per-class thresholds that survive few positives (deterministic: no sampling).

    The global threshold maximises micro-F1 over every (row, class) of the validation split.
    A class with at least `min_positives` positives takes the threshold that maximises its own
    F1, shrunk toward the global one by its support (weight n / (n + prior)); a rarer class,
    or one without positives, takes the global one. None is below THR_MIN.
    """
    y = np.asarray(y_true).astype(np.int8)
    support = y.sum(axis=0).astype(int)
    glob = best_f1_threshold(y.ravel(), proba.ravel()) if support.any() else 0.5
    thr = np.full(proba.shape[1], glob, dtype=np.float64)
    methods = ["global"] * proba.shape[1]
    own = np.flatnonzero(support >= min_positives)
    if len(own):
        w = support[own] / (support[own] + prior)
        thr[own] = w * best_f1_thresholds(y[:, own], proba[:, own]) + (1 - w) * glob
        for k in own:
            methods[k] = "shrunk"
    thr = np.clip(thr, THR_MIN, 1 - THR_MIN).astype(np.float32)
    return Tuned(thr, methods, support.tolist(), float(max(glob, THR_MIN)))


def crossfit_macro_f1(y_true: np.ndarray, proba: np.ndarray, seed: int = 0, splits: int = 1) -> float:
    """Macro-F1 with thresholds never tuned on the rows they are scored on: the rows are split
    in two seeded halves, thresholds tuned on one score the other, and the two scores are
    averaged; with `splits` > 1, over that many seeded halvings. Tuning and scoring on the same
    rows (val_macro_f1_tuned) flatters a model by how well its thresholds fit noise; this is
    what candidates are compared on. One halving of a small val split is a draw (dep11's 294
    rows: 0.015-0.03 sd between halvings, more than the candidates differ); the mean of 8 is not."""
    n = len(y_true)
    if n < 4:
        return macro_f1(y_true, proba, tune_thresholds(y_true, proba).thresholds)
    rng, scores = np.random.default_rng(seed), []
    for _ in range(max(splits, 1)):
        order = rng.permutation(n)
        a, b = np.sort(order[: n // 2]), np.sort(order[n // 2:])
        scores += [macro_f1(y_true[s], proba[s], tune_thresholds(y_true[t], proba[t]).thresholds)
                   for t, s in ((a, b), (b, a))]
    return float(np.mean(scores))
