"""Multi-label metrics and per-class threshold tuning (scikit-learn underneath).

exact_match_accuracy: the share of posts whose whole 50-bit label vector is right (subset
accuracy). label_accuracy: the share of single (post, topic) bits that are right. The seed
reported the second as "accuracy"; with 1-18% prevalence it is ~0.95 for any model.
"""
from __future__ import annotations

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
    for avg in ("macro", "micro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    has_pos = y_true.sum(axis=0) > 0
    out["macro_pr_auc"] = float(average_precision_score(y_true[:, has_pos], proba[:, has_pos], average="macro")) \
        if has_pos.any() else 0.0
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    out["per_class"] = [{"label": n, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                         "support": int(s[i])} for i, n in enumerate(label_names)]
    return out


def macro_f1(y_true: np.ndarray, proba: np.ndarray, thresholds: np.ndarray | float) -> float:
    y_pred = proba >= np.asarray(thresholds, dtype=np.float32)
    return float(precision_recall_fscore_support(np.asarray(y_true).astype(np.int8), y_pred.astype(np.int8),
                                                 average="macro", zero_division=0)[2])


def tune_thresholds(y_true: np.ndarray, proba: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per class, the threshold that maximises F1 on these rows (the validation split).

    A class with no positive rows keeps `default`: there is nothing to tune on.
    """
    out = np.full(proba.shape[1], default, dtype=np.float32)
    for k in range(proba.shape[1]):
        if y_true[:, k].sum() == 0:
            continue
        prec, rec, thr = precision_recall_curve(y_true[:, k], proba[:, k])
        f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
        out[k] = thr[int(np.argmax(f1))]
    return out
