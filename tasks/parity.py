"""Comparing two implementations' logits: used by the ONNX export gate and the Triton canary.

Labels must agree wherever the reference logit is farther than atol from the threshold's
logit. Inside that band a flip is numerically undecidable between any two float
implementations; those flips are counted and reported, not failed.
"""
from __future__ import annotations

import numpy as np


def threshold_logits(thresholds: np.ndarray) -> np.ndarray:
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return np.log(thresholds) - np.log1p(-np.clip(thresholds, 0, 1 - 1e-7))


def compare_logits(got: np.ndarray, want: np.ndarray, thresholds: np.ndarray, atol: float) -> dict:
    if got.shape != want.shape:
        return {"rows": int(len(want)), "ok": False, "atol": atol, "output_shape": list(got.shape),
                "expected_shape": list(want.shape), "max_abs_diff": float("inf"),
                "label_mismatch_rows": int(len(want)), "borderline_flips": 0}
    thr_logit = threshold_logits(thresholds)
    flips = (got >= thr_logit) != (want >= thr_logit)
    borderline = np.abs(want - thr_logit) <= atol
    report = {"rows": int(len(want)), "max_abs_diff": float(np.abs(got - want).max(initial=0.0)), "atol": atol,
              "label_mismatch_rows": int((flips & ~borderline).any(axis=1).sum()),
              "borderline_flips": int((flips & borderline).sum()), "output_shape": list(got.shape)}
    report["ok"] = bool(report["max_abs_diff"] <= atol and report["label_mismatch_rows"] == 0)
    return report
