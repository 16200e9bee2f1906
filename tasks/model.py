"""The classifier: early fusion over image and text embeddings, in one of a few families.

  mlp     concat -> Linear -> ReLU -> Dropout -> Linear (the seed's model)
  lnmlp   concat -> Linear -> LayerNorm -> GELU -> Dropout -> Linear
  resmlp  concat -> Linear -> `depth` pre-norm residual blocks (LayerNorm, GELU) -> LayerNorm -> Linear
  linear  concat -> Linear (a logistic regression per label, trained like the others)

An Ensemble (train's `ensemble` setting) holds several of these and serves the mean of their
probabilities, still as logits, in one graph with the same signature.

With `standardize` (every run since issue 12), the concatenated input is first centred and
scaled by statistics of the train split (tasks.train.input_stats: one scale per modality by
default, or per column as the LogReg baseline's StandardScaler): image and text embeddings come
at very different scales, and one learning rate serves both badly. The statistics are buffers
of the model, so the ONNX graph carries them. Every family exports to the same ONNX signature
(img_emb, txt_emb -> logits).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from tasks.recipe import FAMILIES
from tasks.rundir import WEIGHTS, RunDir


@dataclasses.dataclass
class ModelConfig:
    img_dim: int = 512
    txt_dim: int = 768
    n_labels: int = 50
    hidden: int = 256
    dropout: float = 0.2
    family: str = "mlp"   # FAMILIES; run dirs written before families existed are "mlp"
    depth: int = 2        # resmlp: residual blocks
    standardize: bool = False  # run dirs written before issue 12's recipe have no input scaling
    members: list = dataclasses.field(default_factory=list)  # family "ensemble": each member's ModelConfig (dicts)


class Standardize(nn.Module):
    """(x - mean) * scale per column; a constant column (std 0) is only centred."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    def fit(self, mean, std) -> None:
        std = torch.as_tensor(std, dtype=torch.float32)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.where(std > 1e-6, 1 / std.clamp_min(1e-6), torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.scale


class Dropout(nn.Dropout):
    """nn.Dropout's rule (zero with probability p, scale the rest up) with a cheaper mask: one
    random byte an element, drawn four to an int32, so p is rounded to a multiple of 1/256 (0.2
    -> 0.199, 0.5 exact) and the scale is that rate's. torch's bernoulli kernel took as long as
    the linear layers, and torch.rand an eighth of a training step; this is half of torch.rand's
    cost (bench: 512x1024 forward and backward, 1.7 ms vs 3.8 ms)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drop = min(round(self.p * 256), 255)
        if not self.training or drop == 0:
            return x
        n = x.numel()
        byte = torch.randint(-2 ** 31, 2 ** 31, ((n + 3) // 4,), dtype=torch.int32).view(torch.uint8)[:n]
        return x * (byte.view(x.shape) >= drop).to(x.dtype).mul_(256 / (256 - drop))


class Residual(nn.Module):
    """x + Dropout(Linear(GELU(Linear(LayerNorm(x))))): a pre-norm block, 2x wide inside."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.f = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), Dropout(dropout),
                               nn.Linear(2 * width, width), Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class FusionMLP(nn.Module):
    """concat(img, txt) -> the family's layers -> logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d_in = cfg.img_dim + cfg.txt_dim
        self.norm = Standardize(d_in) if cfg.standardize else nn.Identity()
        if cfg.family == "mlp":
            self.net = nn.Sequential(nn.Linear(d_in, cfg.hidden), nn.ReLU(), Dropout(cfg.dropout),
                                     nn.Linear(cfg.hidden, cfg.n_labels))
        elif cfg.family == "lnmlp":
            self.net = nn.Sequential(nn.Linear(d_in, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.GELU(),
                                     Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.n_labels))
        elif cfg.family == "resmlp":
            self.net = nn.Sequential(nn.Linear(d_in, cfg.hidden), *[Residual(cfg.hidden, cfg.dropout)
                                                                    for _ in range(cfg.depth)],
                                     nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.n_labels))
        elif cfg.family == "linear":
            self.net = nn.Linear(d_in, cfg.n_labels)
        else:
            raise ValueError(f"unknown model family {cfg.family!r} (known: {', '.join(FAMILIES)})")

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of concat(img, txt) rows (training slices the fused rows it holds)."""
        return self.net(self.norm(x))

    def forward(self, img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        return self.fused(torch.cat([img_emb, txt_emb], dim=1))


def _log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """min(x, 0) - log1p(exp(-|x|)): spelled out because ONNX Runtime runs the exporter's
    decomposition of logsigmoid/logsumexp up to 0.4 off in float32 (measured), these ops exactly."""
    return torch.clamp(x, max=0) - torch.log1p(torch.exp(-torch.abs(x)))


def _log_sum_exp(a: torch.Tensor) -> torch.Tensor:
    """log(sum_i exp(a_i)) over the first axis, shifted by the max (see _log_sigmoid)."""
    m = a.max(0).values
    return m + torch.log(torch.exp(a - m).sum(0))


class Ensemble(nn.Module):
    """The mean of its members' probabilities, returned as logits: logit(mean_i sigmoid(l_i)),
    computed as logsumexp(logsigmoid(l)) - logsumexp(logsigmoid(-l)) over the members (the 1/k
    cancels), which stays exact where a float32 sigmoid would round to 0 or 1."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(FusionMLP(ModelConfig(**m)) for m in cfg.members)

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m.fused(x) for m in self.members])
        return _log_sum_exp(_log_sigmoid(logits)) - _log_sum_exp(_log_sigmoid(-logits))

    def forward(self, img_emb: torch.Tensor, txt_emb: torch.Tensor) -> torch.Tensor:
        return self.fused(torch.cat([img_emb, txt_emb], dim=1))


def ensemble_of(models: list[FusionMLP]) -> Ensemble:
    """One Ensemble holding (copies of) these trained models' weights."""
    first = models[0].cfg
    cfg = ModelConfig(first.img_dim, first.txt_dim, first.n_labels, hidden=0, dropout=0.0, family="ensemble",
                      standardize=first.standardize, members=[dataclasses.asdict(m.cfg) for m in models])
    e = Ensemble(cfg)
    for member, m in zip(e.members, models):
        member.load_state_dict(m.state_dict())
    return e.eval()


def build(cfg: ModelConfig) -> FusionMLP | Ensemble:
    return Ensemble(cfg) if cfg.members else FusionMLP(cfg)


def parameters(model: nn.Module) -> int:
    """Trainable parameters (the input scaling is buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def describe(cfg: ModelConfig) -> str:
    """The layers in one line, for the model card."""
    if cfg.members:
        return f"the mean probability of {len(cfg.members)} models: " + "; ".join(
            describe(ModelConfig(**m)) for m in cfg.members)
    x = f"concat(img {cfg.img_dim}, txt {cfg.txt_dim})" + (" -> standardize" if cfg.standardize else "")
    if cfg.family == "mlp":
        return f"{x} -> Linear({cfg.hidden}) -> ReLU -> Dropout({cfg.dropout}) -> Linear({cfg.n_labels})"
    if cfg.family == "lnmlp":
        return f"{x} -> Linear({cfg.hidden}) -> LayerNorm -> GELU -> Dropout({cfg.dropout}) -> Linear({cfg.n_labels})"
    if cfg.family == "resmlp":
        return (f"{x} -> Linear({cfg.hidden}) -> {cfg.depth} residual blocks (LayerNorm, GELU, Dropout({cfg.dropout}))"
                f" -> LayerNorm -> Linear({cfg.n_labels})")
    return f"{x} -> Linear({cfg.n_labels}) (a logistic regression per topic)"


def save(model: FusionMLP | Ensemble, run_dir: Path) -> None:
    torch.save(model.state_dict(), Path(run_dir) / WEIGHTS)
    RunDir(run_dir).write_model_config(dataclasses.asdict(model.cfg))


def load(run_dir: Path) -> FusionMLP | Ensemble:
    """Load without pickle: a plain tensor state dict, weights_only=True."""
    model = build(ModelConfig(**RunDir(run_dir).model_config()))
    model.load_state_dict(torch.load(Path(run_dir) / WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def predict_proba(model: FusionMLP | Ensemble, img, txt, batch: int = 8192):
    """Sigmoid probabilities as a numpy array, in batches (bounded memory)."""
    import numpy as np
    model.eval()
    out = np.empty((len(img), model.cfg.n_labels), dtype=np.float32)
    for s in range(0, len(img), batch):
        logits = model(torch.as_tensor(np.asarray(img[s:s + batch])), torch.as_tensor(np.asarray(txt[s:s + batch])))
        out[s:s + batch] = torch.sigmoid(logits).numpy()
    return out
