"""Comparing two implementations' logits: used by the ONNX export gate and the Triton canary.

Labels must agree wherever the reference logit is farther than atol from the threshold's
logit. Inside that band a flip is numerically undecidable between any two float
implementations; those flips are counted and reported, not failed.
"""
from __future__ import annotations

import numpy as np

# Logit tolerance per (backend, precision), declared once: the ONNX export gate, TensorRT
# parity and the Triton canary all take theirs from here. ORT on CPU reproduces PyTorch/ORT to
# float rounding. On a GPU, fp32 stays fp32: Polygraphy builds plans without TF32 unless asked,
# and the onnxruntime config turns the CUDA provider's TF32 off (tasks/triton/repo.py); what is
# left is the order of reductions (~1e-5 on our widths), 1e-3 keeps a margin. FP16 plans differ
# by ~3e-3..6e-3.
ATOL = {
    ("onnx", "fp32"): 1e-4,            # PyTorch -> ONNX Runtime (export gate)
    ("python", "fp32"): 1e-4,          # Triton's Python backend: ORT on CPU
    ("onnxruntime", "fp32"): 1e-4,     # Triton's ORT backend on CPU
    ("onnxruntime-gpu", "fp32"): 1e-3,  # ... on a GPU (CUDA provider, TF32 off)
    ("tensorrt_plan", "fp32"): 1e-3,   # TensorRT, fp32 kernels (no TF32)
    ("tensorrt_plan", "fp16"): 2e-2,   # TensorRT, FP16 kernels
}
ONNX_ATOL = ATOL[("onnx", "fp32")]  # export-onnx's default


def tolerance(backend: str, precision: str = "fp32", gpu: bool = False) -> float:
    """The logit tolerance for a serving backend and precision (KeyError: no such pair)."""
    key = ("onnxruntime-gpu" if backend == "onnxruntime" and gpu else backend, precision)
    if key not in ATOL:
        raise KeyError(f"no parity tolerance for backend {backend!r} at {precision}"
                       f"{' on GPU' if gpu else ''}; known: {sorted(ATOL)}")
    return ATOL[key]


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
