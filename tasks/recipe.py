"""The training recipe: its defaults, declared once (standard library only).

TrainConfig holds every default. KNOBS are the choices a user sets per run: each becomes a
`tasks train` flag and, when `form` is set, a param of the retraining DAGs' trigger form
(include/training.py), both with the default and bounds declared here.
"""
from __future__ import annotations

import dataclasses

FAMILIES = ("mlp", "lnmlp", "resmlp", "linear")  # tasks/model.py builds each (kept here: stdlib only, for the form)
LOSSES = ("bce", "asl")  # tasks/train.py: BCEWithLogitsLoss, asymmetric_loss
# What `candidates` may name: a family with the width it is tried at (a run's explicit `hidden`
# replaces every candidate's); "mlp", "lnmlp" and "resmlp" take the run's dropout; "wide" is the
# mlp at the width that won on the real text set (docs/benchmarks.md).
CANDIDATES = {
    "mlp": {"family": "mlp", "hidden": 256},
    "wide": {"family": "mlp", "hidden": 1024, "dropout": 0.5},
    "lnmlp": {"family": "lnmlp", "hidden": 256},
    "resmlp": {"family": "resmlp", "hidden": 256},
    # the recipe that is best known on frozen sentence embeddings (issue 23): a wide hidden layer
    # with LayerNorm and GELU, AdamW with weight decay, a one-cycle learning rate
    "strong": {"family": "lnmlp", "hidden": 1024, "dropout": 0.5, "weight_decay": 0.05, "lr_schedule": "onecycle"},
    "linear": {"family": "linear"},
}
BASELINE_ROWS = 50_000  # evaluate's LogReg baseline fits on a seeded sample of at most this many train rows


@dataclasses.dataclass
class TrainConfig:
    max_epochs: int = 0            # 0: from budget_steps (a small dataset gets more, shorter epochs)
    budget_steps: int = 1500       # optimizer steps when max_epochs is 0 (the default candidate's one-cycle spans them)
    patience: int = 5              # early-stopping patience in epochs ...
    patience_steps: int = 500      # ... covering at least this many steps
    select_on: str = "f1"          # keep and stop on: "f1" (val macro-F1, tuned thresholds) or "loss" (the seed)
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 0.0      # AdamW's decoupled weight decay (0: plain Adam, the seed's)
    lr_schedule: str = "plateau"   # "plateau" (ReduceLROnPlateau on val loss, the seed's) or "onecycle" (up to lr
                                   # over the first 10% of the step budget, then cosine down)
    candidates: str = "strong,wide"  # comma-separated CANDIDATES, trained in order; which is kept: train.select
                                   # (the two and their mean: the mean is best on every real set on average)
    select_seconds: int = 1800     # a candidate starts only while the run has spent less than this
    ensemble: int = 3              # >= 2: the mean probability of the best N candidates contends in the selection
                                   # (one ONNX graph; it costs no training, and is kept within select_margin of the best)
    select_margin: float = 0.003   # contenders within this of the best (cross-fitted val macro-F1): the ensemble is
                                   # kept, else the fewest parameters (a difference that small is noise on val)
    select_splits: int = 8         # the cross-fitted score is the mean over this many seeded halvings of val
    race_margin: float = 0.05      # a later candidate trailing the best so far by more than this (val macro-F1) ...
    race_steps: int = 300          # ... after this many steps stops early (0 margin: every candidate trains fully)
    family: str = "mlp"            # the model family of a single run (each candidate sets its own)
    standardize: str = "modality"  # input scaling from the train split (tasks/model.py): "modality" (centre each
                                   # column, one scale per modality), "column" (StandardScaler) or "none" (the seed)
    hidden: int = 0                # 0: each candidate's own width (CANDIDATES); > 0: every candidate at this width
    depth: int = 2                 # residual blocks of the resmlp family
    dropout: float = 0.2
    pos_weight: float = 0.0        # 0: off; >0: per-class neg/pos ratio, capped at this value
    loss: str = "bce"              # "bce" or "asl": the asymmetric loss (Ridnik et al., ICCV 2021) for rare
                                   # labels: easy negatives (p < asl_clip) count nothing, the rest weigh p**asl_gamma
    asl_gamma: float = 4.0         # the negatives' focusing exponent (the paper's gamma-; positives keep gamma+ = 0)
    asl_clip: float = 0.05         # the negatives' probability margin (the paper's m)
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
        names = cfg.candidates.split(",")
        if not cfg.candidates or any(n not in CANDIDATES for n in names) or len(set(names)) != len(names):
            raise ValueError(f"candidates must be distinct names among {', '.join(CANDIDATES)}, comma-separated "
                             f"(got {cfg.candidates!r})")
        if cfg.standardize not in ("modality", "column", "none"):
            raise ValueError("standardize must be 'modality', 'column' or 'none'")
        if not 0 <= cfg.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1) (got {cfg.dropout})")
        if cfg.loss not in LOSSES or cfg.asl_gamma < 0 or not 0 <= cfg.asl_clip < 1:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)} (asl_gamma >= 0, 0 <= asl_clip < 1)")
        if cfg.select_on not in ("f1", "loss"):
            raise ValueError("select_on must be 'f1' or 'loss'")
        if cfg.precision not in ("auto", "32", "bf16-mixed"):
            raise ValueError("precision must be 'auto', '32' or 'bf16-mixed'")
        if cfg.batch_size < 1 or cfg.max_epochs < 0 or cfg.budget_steps < 1 or cfg.lr <= 0 or cfg.cache_mb < 0 or cfg.check_rows < 1 \
                or cfg.window_drops < 0 or cfg.select_seconds < 1 or cfg.race_margin < 0 or cfg.race_steps < 0 \
                or cfg.select_margin < 0 or cfg.ensemble < 0 or cfg.hidden < 0 or cfg.select_splits < 1:
            raise ValueError("batch_size, budget_steps, lr, check_rows, select_seconds and select_splits must be positive; "
                             "max_epochs, cache_mb, window_drops, race_margin, race_steps, select_margin, ensemble and hidden >= 0")
        return cfg

    @classmethod
    def parse_overrides(cls, pairs: str) -> dict:
        """"key=value,key=value" -> {field: value typed as the field} (benchmarks' variants)."""
        def boolean(v: str) -> bool:
            if v.lower() not in ("true", "false", "1", "0"):
                raise ValueError("not true or false")
            return v.lower() in ("true", "1")

        types = {f.name: f.type for f in dataclasses.fields(cls)}
        over = {}
        for pair in filter(None, pairs.split(",")):
            k, _, v = pair.partition("=")
            if k not in types:
                raise ValueError(f"{k!r} is no TrainConfig field (known: {sorted(types)})")
            try:
                over[k] = {"int": int, "float": float, "bool": boolean}.get(types[k], str)(v)
            except ValueError as e:
                raise ValueError(f"{k}={v!r}: not a {types[k]} ({e})") from None
        cls.from_overrides(over)  # checked as a run's would be
        return over

    def candidate_configs(self) -> list[tuple[str, "TrainConfig"]]:
        """(name, the config it trains with) for each candidate, in order."""
        return [(n, dataclasses.replace(self, **{**CANDIDATES[n], **({"hidden": self.hidden} if self.hidden else {})}))
                for n in self.candidates.split(",")]


# The seed's recipe, as the benchmarks reproduce it on this code: one MLP, a DataLoader collating
# rows, batch 64, lr 1e-3, float32, no input scaling, selection and stopping on val loss (patience
# 5 epochs, at most 20), fixed 0.5 thresholds.
SEED_RECIPE = {"candidates": "mlp", "standardize": "none", "loader": "dataloader", "batch_size": 64, "lr": 1e-3,
               "tune_thresholds": False, "precision": "32", "max_epochs": 20, "select_on": "loss",
               "patience_steps": 0}


@dataclasses.dataclass(frozen=True)
class Knob:
    name: str                      # the flag (--name with dashes) and the form param
    field: str                     # the TrainConfig field it sets
    help: str
    form: bool = False             # also in the DAGs' trigger form
    minimum: float | None = None
    exclusive_minimum: float | None = None
    choices: tuple[str, ...] | None = None  # a string knob: one of these
    pattern: str | None = None     # a string knob: a regular expression its value matches

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
        if self.pattern:
            return {"type": "string", "pattern": self.pattern, "description": self.help}
        s = {"type": "integer" if self.type is int else "number", "description": self.help}
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            s["exclusiveMinimum"] = self.exclusive_minimum
        return s


KNOBS = (
    Knob("epochs", "max_epochs", "max epochs (0: from the step budget; early stopping decides)", form=True,
         minimum=0),
    Knob("budget_steps", "budget_steps", "optimizer steps of each candidate when epochs is 0", form=True, minimum=1),
    Knob("candidates", "candidates", "model candidates to train, comma-separated, the best on validation is served: "
         "mlp (the seed's), wide (mlp 1024, dropout 0.5), lnmlp (mlp with LayerNorm, GELU), strong (lnmlp 1024, AdamW, one-cycle), "
         "resmlp (residual, LayerNorm), linear", form=True,
         pattern="^({0})(,({0}))*$".format("|".join(CANDIDATES))),
    Knob("ensemble", "ensemble", "also try the mean probability of the best N candidates as one model (0: off)",
         form=True, minimum=0),
    Knob("select_seconds", "select_seconds", "time budget of the selection: no candidate starts after it",
         form=True, minimum=1),
    Knob("lr", "lr", "Adam learning rate", form=True, exclusive_minimum=0),
    Knob("batch_size", "batch_size", "rows per optimizer step", form=True, minimum=1),
    Knob("hidden", "hidden", "hidden units of every candidate (0: each its own, 256; wide and strong 1024)",
         form=True, minimum=0),
    Knob("depth", "depth", "residual blocks (resmlp)", minimum=1),
    Knob("window_drops", "window_drops", "train on the latest N drops only (0: every drop)", form=True, minimum=0),
    Knob("dropout", "dropout", "dropout after the hidden layer", minimum=0),
    Knob("pos_weight", "pos_weight", "cap of per-class neg/pos loss weights (0: off)", minimum=0),
    Knob("loss", "loss", "training loss: bce, or asl (asymmetric: easy negatives count less, for rare topics)",
         form=True, choices=LOSSES),
    Knob("patience", "patience", "early-stopping patience in epochs", minimum=1),
    Knob("seed", "seed", "training seed"),
    Knob("threads", "threads", "torch intra-op threads (0: torch's default)", minimum=0),
    Knob("cache_mb", "cache_mb", "hold splits up to this many MB in memory; larger ones are streamed",
         minimum=0),
)
