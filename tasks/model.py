"""The classifier: early fusion MLP over image and text embeddings (the seed's model)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from tasks.rundir import WEIGHTS, RunDir


@dataclasses.dataclass
class ModelConfig:
    img_dim: int = 512
    txt_dim: int = 768
    n_labels: int = 50
    hidden: int = 256
    dropout: float = 0.2


class FusionMLP(nn.Module):
    """concat(img, txt) -> Linear -> ReLU -> Dropout -> Linear -> logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(cfg.img_dim + cfg.txt_dim, cfg.hidden), nn.ReLU(),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.n_labels))

    def forward(self, img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([img_emb, txt_emb], dim=1))


def save(model: FusionMLP, run_dir: Path) -> None:
    torch.save(model.state_dict(), Path(run_dir) / WEIGHTS)
    RunDir(run_dir).write_model_config(dataclasses.asdict(model.cfg))


def load(run_dir: Path) -> FusionMLP:
    """Load without pickle: a plain tensor state dict, weights_only=True."""
    cfg = ModelConfig(**RunDir(run_dir).model_config())
    model = FusionMLP(cfg)
    model.load_state_dict(torch.load(Path(run_dir) / WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def predict_proba(model: FusionMLP, img, txt, batch: int = 8192):
    """Sigmoid probabilities as a numpy array, in batches (bounded memory)."""
    import numpy as np
    model.eval()
    out = np.empty((len(img), model.cfg.n_labels), dtype=np.float32)
    for s in range(0, len(img), batch):
        logits = model(torch.as_tensor(np.asarray(img[s:s + batch])), torch.as_tensor(np.asarray(txt[s:s + batch])))
        out[s:s + batch] = torch.sigmoid(logits).numpy()
    return out
