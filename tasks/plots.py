"""PNG plots for evaluation reports (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402


def training_curves(history: list[dict], path: Path) -> None:
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.plot(ep, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch"), a.legend(), a.set_title("BCE loss")
    b.plot(ep, [h["val_macro_f1_at_0.5"] for h in history], color="C2")
    b.set_xlabel("epoch"), b.set_title("val macro-F1 at 0.5")
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)


def per_class_f1(models: dict[str, dict], label_names: list[str], path: Path) -> None:
    x = np.arange(len(label_names))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(8, len(label_names) * 0.25), 4))
    for i, (name, m) in enumerate(models.items()):
        ax.bar(x + i * width, [c["f1"] for c in m["per_class"]], width, label=f"{name} ({m['macro_f1']:.3f})")
    ax.set_xticks(x + 0.4 - width / 2, label_names, rotation=90, fontsize=7)
    ax.set_ylabel("F1 on test"), ax.legend(title="model (macro-F1)"), ax.set_title("Per-class F1")
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)


def pr_curves(y_true: np.ndarray, probas: dict[str, np.ndarray], path: Path) -> None:
    """Micro-averaged PR curve per model (all (post, topic) pairs pooled)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, p in probas.items():
        prec, rec, _ = precision_recall_curve(y_true.ravel(), p.ravel())
        ax.plot(rec, prec, label=name)
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("Micro-averaged PR curve (test)")
    ax.legend(), fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)
