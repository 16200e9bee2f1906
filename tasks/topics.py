"""Logits -> probabilities and topics: the one decision rule for every scorer and backend.

Triton answers logits on every backend (tasks/triton/repo.py); the client applies the
thresholds of the version that answered. In-process ONNX Runtime uses the same rule.
"""
from __future__ import annotations

import numpy as np


def decide(logits: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities float32, topics bool): a topic is on where its probability >= its threshold."""
    probs = (1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float32)))).astype(np.float32)
    return probs, probs >= np.asarray(thresholds, dtype=np.float32)
