"""The training recipe: its defaults, declared once (standard library only).

TrainConfig holds every default. KNOBS are the choices a user sets per run: each becomes a
`tasks train` flag and, when `form` is set, a param of the retraining DAGs' trigger form
(include/training.py), both with the default and bounds declared here.
"""
from __future__ import annotations

import dataclasses

FAMILIES = ("mlp", "resmlp", "linear")  # tasks/model.py builds each (kept here: stdlib only, for the form)
BASELINE_ROWS = 50_000  # evaluate's LogReg baseline fits on a seeded sample of at most this many train rows


@dataclasses.dataclass
class TrainConfig:
    max_epochs: int = 0            # 0: from budget_steps (a small dataset gets more, shorter epochs)
    budget_steps: int = 3000       # optimizer steps when max_epochs is 0
    patience: int = 5              # early-stopping patience in epochs ...
    patience_steps: int = 500      # ... covering at least this many steps
    select_on: str = "f1"          # keep and stop on: "f1" (val macro-F1, tuned thresholds) or "loss" (the seed)
    batch_size: int = 512
    lr: float = 3e-3
    family: str = "mlp"            # the model family (tasks/model.py FAMILIES)
    hidden: int = 256
    depth: int = 2                 # residual blocks of the resmlp family
    dropout: float = 0.2
    pos_weight: float = 0.0        # 0: off; >0: per-class neg/pos ratio, capped at this value
    tune_thresholds: bool = True   # False: the seed's fixed 0.5
    loader: str = "tensor"         # "tensor" (in-memory slices) or "dataloader" (the seed's recipe)
    # ReduceLROnPlateau, torch's defaults as in the seed. With early-stopping patience 5 it rarely
    # fires; patience 2 / factor 0.5 buys ~+0.01 macro-F1 for ~1.7x the time (docs/benchmarks.md).
    lr_patience: int = 10
    lr_factor: float = 0.1
    precision: str = "auto"        # "32", "bf16-mixed", or "auto": bf16-mixed where the CPU has native bf16
    seed: int = 42
    split_seed: int = 42
    threads: int = 0               # torch intra-op threads; 0 = torch default
    cache_mb: int = 768            # splits up to this size (together) are held in memory, larger ones streamed
    check_rows: int = 1000         # rows kept for every parity and canary check (check_rows.npz)
    window_drops: int = 0          # train (and evaluate) on the latest N drops only; 0 = every drop

    @classmethod
    def from_overrides(cls, overrides: dict) -> "TrainConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - fields
        if unknown:
            raise ValueError(f"unknown hyper-parameters: {sorted(unknown)} (known: {sorted(fields)})")
        cfg = cls(**overrides)
        if cfg.loader not in ("tensor", "dataloader"):
            raise ValueError("loader must be 'tensor' or 'dataloader'")
        if cfg.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}")
        if cfg.select_on not in ("f1", "loss"):
            raise ValueError("select_on must be 'f1' or 'loss'")
        if cfg.precision not in ("auto", "32", "bf16-mixed"):
            raise ValueError("precision must be 'auto', '32' or 'bf16-mixed'")
        if cfg.batch_size < 1 or cfg.max_epochs < 0 or cfg.budget_steps < 1 or cfg.lr <= 0 or cfg.cache_mb < 0 or cfg.check_rows < 1 \
                or cfg.window_drops < 0:
            raise ValueError("batch_size, budget_steps, lr and check_rows must be positive; max_epochs, cache_mb "
                             "and window_drops >= 0")
        return cfg


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str                      # the flag (--name with dashes) and the form param
    field: str                     # the TrainConfig field it sets
    help: str
    form: bool = False             # also in the DAGs' trigger form
    minimum: float | None = None
    exclusive_minimum: float | None = None
    choices: tuple[str, ...] | None = None  # a string knob: one of these

    @property
    def default(self):
        return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == self.field)

    @property
    def type(self) -> type:
        return type(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def json_schema(self) -> dict:
        """For airflow.sdk.Param(default, **schema)."""
        if self.choices:
            return {"type": "string", "enum": list(self.choices), "description": self.help}
        s = {"type": "integer" if self.type is int else "number", "description": self.help}
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            s["exclusiveMinimum"] = self.exclusive_minimum
        return s


KNOBS = (
    Knob("epochs", "max_epochs", "max epochs (0: from the step budget; early stopping decides)", form=True,
         minimum=0),
    Knob("budget_steps", "budget_steps", "optimizer steps when epochs is 0", minimum=1),
    Knob("lr", "lr", "Adam learning rate", form=True, exclusive_minimum=0),
    Knob("batch_size", "batch_size", "rows per optimizer step", form=True, minimum=1),
    Knob("family", "family", "model family: mlp (the seed's), resmlp (residual, LayerNorm), linear", form=True,
         choices=FAMILIES),
    Knob("hidden", "hidden", "hidden units of the fusion MLP", form=True, minimum=1),
    Knob("depth", "depth", "residual blocks (resmlp)", minimum=1),
    Knob("window_drops", "window_drops", "train on the latest N drops only (0: every drop)", form=True, minimum=0),
    Knob("dropout", "dropout", "dropout after the hidden layer", minimum=0),
    Knob("pos_weight", "pos_weight", "cap of per-class neg/pos loss weights (0: off)", minimum=0),
    Knob("patience", "patience", "early-stopping patience in epochs", minimum=1),
    Knob("seed", "seed", "training seed"),
    Knob("threads", "threads", "torch intra-op threads (0: torch's default)", minimum=0),
    Knob("cache_mb", "cache_mb", "hold splits up to this many MB in memory; larger ones are streamed",
         minimum=0),
)
