"""PNG plots for evaluation reports (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402


def training_curves(history: list[dict], path: Path, best_epoch: int | None = None) -> None:
    """Losses and the validation macro-F1 per epoch; the epoch whose weights were kept is marked."""
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.plot(ep, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch"), a.set_title("BCE loss")
    b.plot(ep, [h["val_macro_f1_at_0.5"] for h in history], color="C2", label="at 0.5")
    if all("val_macro_f1_tuned" in h for h in history):
        b.plot(ep, [h["val_macro_f1_tuned"] for h in history], color="C3", label="tuned thresholds")
    b.set_xlabel("epoch"), b.set_title("validation macro-F1")
    if best_epoch:
        for ax in (a, b):
            ax.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
    a.legend(), b.legend()
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)


def per_class_f1(models: dict[str, dict], label_names: list[str], path: Path) -> None:
    """Horizontal bars, topics sorted by the candidate's F1 (weakest at the top), support in the
    label: readable for 90+ topics (the figure grows with them)."""
    cand = models["candidate"]["per_class"]
    order = sorted(range(len(label_names)), key=lambda i: (cand[i]["f1"], -cand[i]["support"]))
    y = np.arange(len(order))
    height = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(8, max(4, 0.22 * len(order) * max(1, len(models) / 2) + 1.5)))
    for i, (name, m) in enumerate(models.items()):
        ax.barh(y + i * height, [m["per_class"][k]["f1"] for k in order], height,
                label=f"{name} (macro {m['macro_f1']:.3f})")
    ax.set_yticks(y + 0.4 - height / 2, [f"{label_names[k]} (n={cand[k]['support']})" for k in order], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("F1 on test"), ax.set_xlim(0, 1), ax.legend(title="model", loc="lower right")
    ax.set_title("Per-topic F1 (sorted by the candidate; n = test positives)")
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)


def pr_curves(y_true: np.ndarray, probas: dict[str, np.ndarray], path: Path, label_names: list[str] | None = None,
              weakest: int = 6) -> None:
    """The micro-averaged PR curve per model, and per-topic curves for the candidate's weakest
    topics by average precision (those with test positives)."""
    from sklearn.metrics import average_precision_score
    cand = probas.get("candidate")
    names = label_names or [f"topic {k}" for k in range(y_true.shape[1])]
    has_pos = np.flatnonzero(y_true.sum(0) > 0)
    weak = []
    if cand is not None and len(has_pos):
        ap = {k: average_precision_score(y_true[:, k], cand[:, k]) for k in has_pos}
        weak = sorted(ap, key=ap.get)[:weakest]
    fig, axes = plt.subplots(1, 2 if weak else 1, figsize=(11 if weak else 5, 4), squeeze=False)
    ax = axes[0][0]
    for name, p in probas.items():
        prec, rec, _ = precision_recall_curve(y_true.ravel(), p.ravel())
        ax.plot(rec, prec, label=name)
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("Micro-averaged PR curve (test)")
    ax.legend()
    if weak:
        ax = axes[0][1]
        for k in weak:
            prec, rec, _ = precision_recall_curve(y_true[:, k], cand[:, k])
            ax.plot(rec, prec, label=f"{names[k]} (AP {ap[k]:.2f}, n={int(y_true[:, k].sum())})")
        ax.set_xlabel("recall"), ax.set_title("Candidate: weakest topics (test)"), ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(path, dpi=110), plt.close(fig)
