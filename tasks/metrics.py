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
from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_curve, \
    precision_recall_fscore_support


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
    """Macro-F1 over the classes with positives among these rows (as in `compute`)."""
    y_true = np.asarray(y_true).astype(np.int8)
    y_pred = proba >= np.asarray(thresholds, dtype=np.float32)
    labels = np.flatnonzero(y_true.sum(axis=0) > 0)
    if not len(labels):
        return 0.0
    return float(precision_recall_fscore_support(y_true, y_pred.astype(np.int8), labels=labels, average="macro",
                                                 zero_division=0)[2])


MIN_POSITIVES = 5   # a class with fewer validation positives takes the global threshold
PRIOR = 10          # shrinkage: a class's own threshold weighs n / (n + PRIOR) for n positives
THR_MIN = 0.01      # no threshold below this: a constant-zero score never predicts every row


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score threshold that maximises F1 on these (flattened) rows."""
    prec, rec, thr = precision_recall_curve(y, p)
    f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
    return float(thr[int(np.argmax(f1))])


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
    for k in np.flatnonzero(support >= min_positives):
        w = support[k] / (support[k] + prior)
        thr[k] = w * best_f1_threshold(y[:, k], proba[:, k]) + (1 - w) * glob
        methods[k] = "shrunk"
    thr = np.clip(thr, THR_MIN, 1 - THR_MIN).astype(np.float32)
    return Tuned(thr, methods, support.tolist(), float(max(glob, THR_MIN)))
