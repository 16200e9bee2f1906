"""`tasks train`: fit the candidates with PyTorch Lightning, keep the best on validation, tune
per-class thresholds on val.

Candidates (`candidates`, tasks/recipe.py CANDIDATES): each is trained on the same data with its
own step budget and early stopping, in order, while the selection's time budget lasts; the one
with the best cross-fitted validation macro-F1 (`select`; their ensemble contends too) is the
model of the run, whatever its family: every family exports to the same ONNX graph.

Data: a split that fits `cache_mb` is read once and held as one fused tensor; batches are
index slices of it, not a DataLoader collating 64 single rows per step. A larger history is
streamed: each epoch reads the drops in shuffled groups of storage blocks and shuffles rows
within a group, so memory stays bounded however many drops there are (bench/train_memory.py).
That, a larger batch with a higher learning rate, and bf16 autocast on CPUs with native bf16
are where the speed-up over the seed recipe comes from (bench/train_speed.py).
"""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import json
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from tasks import dataset as ds
from tasks import lineage, metrics, model as mdl, tracking
from tasks.fsutil import atomic_dir
from tasks.recipe import TrainConfig
from tasks.rundir import RunDir
from tasks.split import TEST, TRAIN, VAL

log = logging.getLogger(__name__)
# Lightning's banner lines ("GPU available", tips) are noise in a task log.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*(LeafSpec|does not have many workers).*")


def resolve_precision(precision: str) -> str:
    """bf16 autocast halves matmul cost on CPUs with native bf16 (AVX512-BF16/AMX) and is
    slow emulation elsewhere, so "auto" asks oneDNN. Weights stay float32 either way."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


class Batches(torch.utils.data.IterableDataset):
    """Shuffled (x, y) batches of one split: slices of an in-memory tensor when the split was
    cached, else read per group of `group` storage blocks (shuffled order) and shuffled within."""

    def __init__(self, d: ds.Dataset, which: int, batch_size: int, shuffle: bool, seed: int, cache: bool,
                 group: int = 4):
        self.d, self.which, self.batch_size, self.shuffle, self.seed, self.group = d, which, batch_size, shuffle, \
            seed, group
        self.epoch = 0
        self.blocks = d.blocks(which)
        self.cached = _tensors(d, np.concatenate(self.blocks)) if cache and self.blocks else None
        self.norm: tuple[torch.Tensor, torch.Tensor] | None = None

    def standardize(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        """Yield (x - mean) * scale: the model's input scaling, done once on a cached split
        (in place) rather than on every batch, or per group as a streamed split is read."""
        if self.cached is not None:
            self.cached[0].sub_(mean).mul_(scale)
        else:
            self.norm = (mean, scale)

    def _read(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _tensors(self.d, idx)
        if self.norm is not None:
            x.sub_(self.norm[0]).mul_(self.norm[1])
        return x, y

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += self.shuffle
        if self.cached is not None:
            yield from self._slices(self.cached, g)
            return
        order = torch.randperm(len(self.blocks), generator=g).tolist() if self.shuffle else range(len(self.blocks))
        order = list(order)
        groups = [np.sort(np.concatenate([self.blocks[i] for i in order[s:s + self.group]]))
                  for s in range(0, len(order), self.group)]
        # read the next group in a thread while this one trains (file reads and copies release the GIL):
        # at most two groups in memory
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self._read, groups[0])
            for k in range(len(groups)):
                xy = pending.result()
                if k + 1 < len(groups):
                    pending = pool.submit(self._read, groups[k + 1])
                yield from self._slices(xy, g)

    def _slices(self, xy: tuple[torch.Tensor, torch.Tensor], g: torch.Generator):
        n = len(xy[0])
        order = torch.randperm(n, generator=g) if self.shuffle else None
        for s in range(0, n, self.batch_size):
            if order is None:
                yield tuple(t[s:s + self.batch_size] for t in xy)
            else:
                idx = order[s:s + self.batch_size]
                yield tuple(t[idx] for t in xy)


def _tensors(d: ds.Dataset, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(d.read(idx)), torch.from_numpy(d.labels[idx].astype(np.float32))


def asymmetric_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float, clip: float,
                    pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """ASL (Ridnik et al., ICCV 2021) with gamma+ = 0: a positive costs what it costs in BCE; a
    negative's probability is shifted down by `clip` (below it, it costs nothing) and its log-loss
    weighed by that shifted probability to the power `gamma`. Mean over elements, as BCE's."""
    x = logits.float()
    pos = nn.functional.logsigmoid(x)
    if pos_weight is not None:
        pos = pos * pos_weight
    p = (torch.sigmoid(x) - clip).clamp(min=0)
    # log(1 - p) from sigmoid(-x), exact where sigmoid(x) rounds to 1; >= log(clip) when clip > 0
    log1m = nn.functional.logsigmoid(-x) if clip == 0 else torch.log((torch.sigmoid(-x) + clip).clamp(max=1))
    neg = p.pow(gamma) * log1m
    return -(y * pos + (1 - y) * neg).mean()


class LitFusion(L.LightningModule):
    def __init__(self, model_cfg: mdl.ModelConfig, cfg: TrainConfig, pos_weight: torch.Tensor | None,
                 total_steps: int = 1):
        super().__init__()
        self.model = mdl.FusionMLP(model_cfg)
        self.cfg = cfg
        self.total_steps = total_steps  # the step budget a one-cycle schedule spans
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight) if cfg.loss == "bce" else \
            (lambda logits, y: asymmetric_loss(logits, y, cfg.asl_gamma, cfg.asl_clip, pos_weight))
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._loss_sum, self._loss_rows = 0.0, 0

    def training_step(self, batch, _):
        x, y = batch  # x = concat(img, txt), built once per split, not per step
        loss = self.loss(self.model.net(x), y)  # rows come standardized (Batches)
        # summed here, not self.log()ged: Lightning's per-step logging cost ~0.5 ms a step
        self._loss_sum, self._loss_rows = self._loss_sum + loss.detach().float() * len(y), self._loss_rows + len(y)
        return loss

    def take_train_loss(self) -> float:
        """The epoch's mean training loss (and a fresh sum for the next epoch)."""
        mean = float(self._loss_sum) / max(self._loss_rows, 1)
        self._loss_sum, self._loss_rows = 0.0, 0
        return mean

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.model.net(x).float()
        self.log("val_loss", self.loss(logits, y), on_step=False, on_epoch=True, batch_size=len(y))
        self._val.append((logits.detach(), y))

    def on_validation_epoch_end(self):
        logits = torch.cat([v[0] for v in self._val])
        y = torch.cat([v[1] for v in self._val])
        self._val.clear()
        y, p = y.numpy(), torch.sigmoid(logits).numpy()
        self.log("val_macro_f1", metrics.macro_f1(y, p, 0.5))
        # what we report: macro-F1 with thresholds tuned as train tunes them (selection and stopping)
        self.log("val_macro_f1_tuned", metrics.macro_f1(y, p, metrics.tune_thresholds(y, p).thresholds))

    def configure_optimizers(self):
        # fused: one kernel for every parameter, half the time of the per-tensor loop on CPU
        opt = torch.optim.AdamW(self.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, fused=True) \
            if self.cfg.weight_decay else torch.optim.Adam(self.parameters(), lr=self.cfg.lr, fused=True)
        if self.cfg.lr_schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.cfg.lr, total_steps=self.total_steps,
                                                        pct_start=0.1)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=self.cfg.lr_factor,
                                                           patience=self.cfg.lr_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class EpochReport(L.Callback):
    """One plain log line per epoch (readable in Airflow task logs), history, MLflow, best weights."""

    def __init__(self, active_run, select_on: str, name: str = "", race: tuple[float, float, int] | None = None):
        """race: (the best score so far of the candidates before this one, margin, steps): once
        this one has trained that many steps and its best is below that score minus the margin,
        it stops (it would not be kept: successive halving's rule, with two at a time)."""
        self.history: list[dict] = []
        self.best_loss, self.best_score, self.best_state, self.best_epoch = float("inf"), -1.0, None, -1
        self.active_run, self.select_on, self.name, self.race = active_run, select_on, name, race
        self.dropped = False
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):  # runs after the epoch's validation
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {"epoch": trainer.current_epoch + 1, "train_loss": pl_module.take_train_loss(),
               "val_loss": m["val_loss"], "val_macro_f1_at_0.5": m["val_macro_f1"],
               "val_macro_f1_tuned": m["val_macro_f1_tuned"],
               "lr": trainer.optimizers[0].param_groups[0]["lr"], "seconds": time.perf_counter() - self._t0}
        self._t0 = time.perf_counter()
        self.history.append(row)
        better = row["val_macro_f1_tuned"] > self.best_score if self.select_on == "f1" \
            else row["val_loss"] < self.best_loss
        if better:
            self.best_loss, self.best_score, self.best_epoch = row["val_loss"], row["val_macro_f1_tuned"], row["epoch"]
            self.best_state = copy.deepcopy(pl_module.model.state_dict())
        log.info("%sepoch %d/%d train_loss=%.4f val_loss=%.4f val_macro_f1@0.5=%.4f tuned=%.4f lr=%.2e %.1fs",
                 f"[{self.name}] " if self.name else "", row["epoch"], trainer.max_epochs, row["train_loss"],
                 row["val_loss"], row["val_macro_f1_at_0.5"], row["val_macro_f1_tuned"], row["lr"], row["seconds"])
        log_epoch(self.active_run, row, f"{self.name}." if self.name else "")
        if self.race and trainer.global_step >= self.race[2] and self.best_score < self.race[0] - self.race[1]:
            log.info("[%s] stops: its best %.4f trails the best candidate so far (%.4f) by more than %.2f after %d "
                     "steps", self.name, self.best_score, self.race[0], self.race[1], trainer.global_step)
            self.dropped, trainer.should_stop = True, True


def log_epoch(active_run, row: dict, prefix: str = "") -> None:
    """Per-epoch curves (a candidate's under its name); the selected model's final figures are
    logged by train() under their own names."""
    tracking.log_metrics(active_run, {prefix + ("epoch_" if k == "val_macro_f1_tuned" else "") + k.replace("@", "_at_"): v
                                      for k, v in row.items() if k != "epoch"}, step=row["epoch"])


def input_stats(d: ds.Dataset, how: str, cached: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per input column over the train split: from its cached tensor, or read
    block by block. "column": each column's own std. "modality": one std per modality (the
    root of its columns' mean variance), which evens out the image and text scales but keeps
    each embedding's geometry."""
    n, total, sq = 0, np.zeros(d.dim), np.zeros(d.dim)
    chunks = (cached[s:s + ds.BLOCK].numpy() for s in range(0, len(cached), ds.BLOCK)) if cached is not None \
        else (x for x, _ in d.iter_xy(TRAIN))
    for x in chunks:
        n, total, sq = n + len(x), total + x.sum(0, dtype=np.float64), sq + np.square(x).sum(0, dtype=np.float64)
    mean = total / max(n, 1)
    var = np.maximum(sq / max(n, 1) - mean ** 2, 0)
    if how == "modality":
        for block in (slice(0, d.img_dim), slice(d.img_dim, d.dim)):
            var[block] = var[block].mean()
    return mean, np.sqrt(var)


def _loaders(d: ds.Dataset, cfg: TrainConfig):
    """Train and val loaders; the train split is cached first if the budget allows, then val."""
    budget = cfg.cache_mb << 20
    row_bytes = d.dim * 4
    cache_train = len(d.index(TRAIN)) * row_bytes <= budget
    cache_val = len(d.index(VAL)) * row_bytes <= budget - cache_train * len(d.index(TRAIN)) * row_bytes
    if cfg.loader == "dataloader":  # the seed's recipe: a DataLoader collating single rows (small data only)
        img, txt, y = d.part(TRAIN)
        train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
            torch.from_numpy(np.hstack([img, txt])), torch.from_numpy(y)), batch_size=cfg.batch_size, shuffle=True)
    else:
        train = torch.utils.data.DataLoader(Batches(d, TRAIN, cfg.batch_size, True, cfg.seed, cache_train),
                                            batch_size=None)
    val = torch.utils.data.DataLoader(Batches(d, VAL, 8192, False, cfg.seed, cache_val), batch_size=None)
    log.info("train split %s, val split %s (cache budget %d MB)", "in memory" if cache_train else "streamed",
             "in memory" if cache_val else "streamed", cfg.cache_mb)
    return train, val


def predict_split(model: mdl.FusionMLP, d: ds.Dataset, which: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of one split, block by block."""
    ys, ps = [], []
    for x, y in d.iter_xy(which):
        ys.append(y)
        ps.append(mdl.predict_proba(model, x[:, :d.img_dim], x[:, d.img_dim:]))
    return np.concatenate(ys), np.concatenate(ps)


def check_index(d: ds.Dataset, n: int) -> tuple[np.ndarray, str]:
    """The first n test rows (topped up from val, then train, when the test split is smaller)."""
    parts, source = [d.index(TEST)], "test"
    if len(parts[0]) < n:
        parts += [d.index(VAL), d.index(TRAIN)]
        source = "test+val+train"
    return np.sort(np.concatenate(parts)[:n]), source


def budget(cfg: TrainConfig, n_train: int) -> tuple[int, int]:
    """(max epochs, patience in epochs). max_epochs 0 means "from the step budget": a small
    dataset gets more epochs of fewer steps; patience covers at least patience_steps steps."""
    steps = max(1, -(-n_train // cfg.batch_size))
    max_epochs = cfg.max_epochs or max(1, -(-cfg.budget_steps // steps))
    return max_epochs, max(cfg.patience, -(-cfg.patience_steps // steps))


def train(data: list[Path], out: Path, cfg: TrainConfig, *, tracking_uri: str | None = None,
          run_name: str | None = None) -> dict:
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)
    d = ds.load(data, seed=cfg.split_seed, last=cfg.window_drops)
    n_train, n_val = len(d.index(TRAIN)), len(d.index(VAL))
    if n_train == 0 or n_val == 0:
        raise ValueError(f"{data}: too few rows for a train/val split ({len(d.ids)} rows)")
    log.info("data %s: %d rows (train %d, val %d), %d labels, dims %d+%d", d.version, len(d.ids),
             n_train, n_val, len(d.label_names), d.img_dim, d.txt_dim)
    precision = resolve_precision(cfg.precision)
    params = {**dataclasses.asdict(cfg), "precision_used": precision, "data_version": d.version, "drops": ",".join(d.drops),
              "git_commit": tracking.git_commit(), "rows_train": n_train, "rows_val": n_val}
    with tracking.run(tracking_uri, run_name=run_name) as active, atomic_dir(out) as tmp:
        tracking.log_params(active, params)
        prep = prepare(d, cfg, precision)
        tried = []
        candidates = cfg.candidate_configs()
        for name, ccfg in candidates:
            spent = time.perf_counter() - t_start
            if tried and spent >= cfg.select_seconds:
                log.warning("selection: %s not tried, the time budget of %ds is spent (%.0fs)", name,
                            cfg.select_seconds, spent)
                continue
            race = (max(f.score for f in tried), cfg.race_margin, cfg.race_steps) if tried and cfg.race_margin else None
            tried.append(fit_candidate(name, ccfg, prep, active, seconds_left=cfg.select_seconds - spent,
                                       tag=len(candidates) > 1, race=race))
        best, scored = select(tried, d, cfg.select_margin, cfg.split_seed, cfg.ensemble, cfg.select_splits)
        if len(scored) > 1:
            for f in scored:
                log.info("selection: %-7s val macro-F1 cross-fitted %s (tuned on the same rows %.4f), %d parameters, "
                         "best epoch %d of %d, %.1fs%s", f.name, "-" if f.crossfit is None else f"{f.crossfit:.4f}",
                         f.score, f.parameters, f.report.best_epoch, len(f.report.history), f.seconds,
                         "  <- kept" if f is best else "")
            for row in best.report.history:  # the kept model's curves under the plain names
                log_epoch(active, row)
        model, report, model_cfg, max_epochs, patience = best.model, best.report, best.model_cfg, best.max_epochs, \
            best.patience
        fit_seconds = time.perf_counter() - t_start

        val_y, val_proba = best.val if best.val is not None else predict_split(model, d, VAL)  # once
        n_labels = len(d.label_names)
        tuned = metrics.tune_thresholds(val_y, val_proba) if cfg.tune_thresholds else \
            metrics.Tuned(np.full(n_labels, 0.5, np.float32), ["fixed"] * n_labels, val_y.sum(0).astype(int).tolist(),
                          0.5)
        thr = tuned.thresholds
        f1_fixed, f1_tuned = metrics.macro_f1(val_y, val_proba, 0.5), metrics.macro_f1(val_y, val_proba, thr)
        out_dir = RunDir(tmp)
        mdl.save(model, tmp)
        out_dir.write_thresholds(d.label_names, thr.tolist(), methods=tuned.methods, val_support=tuned.support,
                                 global_threshold=tuned.global_threshold)
        out_dir.write_history(report.history)
        idx, source = check_index(d, cfg.check_rows)
        x = d.read(idx)
        out_dir.write_check_rows(x[:, :d.img_dim], x[:, d.img_dim:], d.ids[idx], source)
        summary = {"params": params, "model": dataclasses.asdict(model_cfg), "candidate": best.record()["name"],
                   "kept": best.record(), "candidates": [f.record() for f in scored],
                   "best_epoch": report.best_epoch, "epochs_run": len(report.history),
                   "best_val_loss": report.best_loss, "selected_on": cfg.select_on, "max_epochs": max_epochs,
                   "patience": patience, "val_macro_f1_at_0.5": f1_fixed,
                   "val_macro_f1_tuned": f1_tuned, "fit_seconds": fit_seconds,
                   "seconds": time.perf_counter() - t_start, "data_version": d.version,
                   "tracking_uri": tracking_uri if active else None,
                   "mlflow_run_id": active.info.run_id if active else None}
        out_dir.write_summary(summary)
        data = lineage.data_record(d.paths, d.version)
        out_dir.add_lineage(data=data, train={"run_name": run_name, "mlflow_run_id": summary["mlflow_run_id"],
                                              "tracking_uri": summary["tracking_uri"],
                                              "git_commit": params["git_commit"]})
        tracking.set_tags(active, {"data_version": d.version, "dvc_md5": data["dvc_md5"], "candidate": summary["candidate"]})
        tracking.log_metrics(active, {f"candidate_{f.name}_val_macro_f1_tuned": f.score for f in scored})
        tracking.log_summary(active, {**summary, "train_seconds": summary["seconds"]}, LOGGED)
        tracking.log_artifacts(active, tmp, "model")
    log.info("trained in %.1fs (%s, best epoch %d of %d): val macro-F1 %.4f at 0.5, %.4f tuned -> %s",
             summary["seconds"], summary["candidate"], report.best_epoch, len(report.history), f1_fixed, f1_tuned, out)
    return summary


# what of a training summary goes to MLflow (numbers as metrics, selected_on as a tag)
LOGGED = ("best_val_loss", "selected_on", "max_epochs", "patience", "val_macro_f1_at_0.5", "val_macro_f1_tuned",
          "train_seconds")


@dataclasses.dataclass
class Fitted:
    name: str
    model: mdl.FusionMLP | mdl.Ensemble
    report: EpochReport  # an ensemble's: its best member's (its curves are the members' own)
    model_cfg: mdl.ModelConfig
    cfg: TrainConfig
    max_epochs: int
    patience: int
    seconds: float
    crossfit: float | None = None  # val macro-F1, thresholds tuned on the other half (metrics.crossfit_macro_f1)
    val: tuple[np.ndarray, np.ndarray] | None = None  # (labels, probabilities) on val, once selection made them
    members: tuple[str, ...] = ()  # an ensemble's members' names
    tuned: float | None = None  # an ensemble's val macro-F1, thresholds tuned on val (a candidate's: its report's)

    @property
    def score(self) -> float:
        if self.tuned is not None:
            return self.tuned
        return self.report.best_score if self.report.best_state is not None else -1.0

    @property
    def parameters(self) -> int:
        return mdl.parameters(self.model)

    def record(self) -> dict:
        return {"name": self.name, "family": self.model_cfg.family, "hidden": self.model_cfg.hidden,
                "dropout": self.model_cfg.dropout, "lr": self.cfg.lr, "weight_decay": self.cfg.weight_decay,
                "lr_schedule": self.cfg.lr_schedule, "loss": self.cfg.loss, "parameters": self.parameters,
                "val_macro_f1_tuned": self.score, "val_macro_f1_crossfit": self.crossfit,
                "best_epoch": self.report.best_epoch, "dropped_early": self.report.dropped,
                "epochs_run": len(self.report.history), "seconds": self.seconds,
                **({"members": list(self.members)} if self.members else {})}


def select(tried: list[Fitted], d: ds.Dataset, margin: float, seed: int, ensemble: int, splits: int) \
        -> tuple[Fitted, list[Fitted]]:
    """The model to keep, and every candidate with weights (a candidate the race stopped is
    listed, not scored). Each is scored on val with
    cross-fitted thresholds (never tuned on the rows they score; the mean over `splits` seeded
    halvings, the same for every contender); with `ensemble` >= 2, the mean
    of the best `ensemble` candidates' probabilities contends too (it costs no training). Of
    those within `margin` of the best, the ensemble wins, else the one with the fewest
    parameters: a difference that small is noise (`pick`)."""
    if len(tried) == 1:
        return tried[0], tried
    listed = [f for f in tried if f.report.best_state is not None]
    # a candidate the race stopped is no contender and no member: it is listed, not scored
    contenders = [f for f in listed if not f.report.dropped]
    for f in contenders:
        f.val = predict_split(f.model, d, VAL)
        f.crossfit = metrics.crossfit_macro_f1(*f.val, seed=seed, splits=splits)
    if ensemble >= 2 and len(contenders) >= 2:
        top = sorted(contenders, key=lambda f: -f.crossfit)[:ensemble]
        model = mdl.ensemble_of([f.model for f in top])
        e = Fitted("ensemble", model, top[0].report, model.cfg, top[0].cfg, top[0].max_epochs, top[0].patience,
                   sum(f.seconds for f in top), members=tuple(f.name for f in top))
        e.val = (top[0].val[0], np.mean([f.val[1] for f in top], axis=0, dtype=np.float32))
        e.crossfit = metrics.crossfit_macro_f1(*e.val, seed=seed, splits=splits)
        e.tuned = metrics.macro_f1(*e.val, metrics.tune_thresholds(*e.val).thresholds)
        contenders, listed = contenders + [e], listed + [e]
    best = contenders[pick([f.crossfit for f in contenders], [f.parameters for f in contenders], margin,
                           ensemble=len(contenders) - 1 if contenders[-1].members else None)]
    return best, listed


def pick(scores: list[float], sizes: list[int], margin: float, ensemble: int | None = None) -> int:
    """Index of the model to keep among those scoring within `margin` of the best: the ensemble
    (index `ensemble`) if it is among them, else the smallest (ties: the higher score, then the
    earlier one). The ensemble is no choice among noisy scores but the mean of the candidates;
    on test it was ahead of its better member in 9 of 12 (set, seed) pairs (docs/benchmarks.md,
    fourth pass)."""
    top = max(scores)
    near = [i for i, s in enumerate(scores) if s >= top - margin]
    return min(near, key=lambda i: (i != ensemble, sizes[i], -scores[i], i))


@dataclasses.dataclass
class Prepared:
    """What every candidate of a run trains on, made once."""
    d: ds.Dataset
    loaders: tuple          # train, val
    norm: mdl.Standardize | None  # the input scaling every candidate carries, fitted on the train split
    pos_weight: torch.Tensor | None
    precision: str


def prepare(d: ds.Dataset, cfg: TrainConfig, precision: str) -> Prepared:
    n_train = len(d.index(TRAIN))
    pos_weight = None
    if cfg.pos_weight > 0:
        pos = d.labels[d.index(TRAIN)].sum(0, dtype=np.int64)
        pos_weight = torch.from_numpy(np.clip((n_train - pos) / np.maximum(pos, 1), 1, cfg.pos_weight)
                                      .astype(np.float32))
    loaders = _loaders(d, cfg)
    norm = None
    if cfg.standardize != "none":
        train_rows = loaders[0].dataset
        norm = mdl.Standardize(d.dim)
        norm.fit(*input_stats(d, cfg.standardize, train_rows.cached[0] if isinstance(train_rows, Batches)
                              and train_rows.cached is not None else None))
        for loader in loaders:
            if isinstance(loader.dataset, Batches):
                loader.dataset.standardize(norm.mean, norm.scale)
            else:  # the seed's DataLoader over an in-memory TensorDataset
                loader.dataset.tensors[0].sub_(norm.mean).mul_(norm.scale)
    return Prepared(d, tuple(loaders), norm, pos_weight, precision)


def fit_candidate(name: str, cfg: TrainConfig, prep: Prepared, active, *, seconds_left: float, tag: bool,
                  race: tuple[float, float, int] | None = None) -> Fitted:
    """Train one candidate from its seed; its best-validation weights are loaded back. `tag`:
    its log lines and curves carry its name (when there are several)."""
    d, loaders, norm, pos_weight, precision = prep.d, prep.loaders, prep.norm, prep.pos_weight, prep.precision
    t0 = time.perf_counter()
    L.seed_everything(cfg.seed, verbose=False)
    for loader in loaders:
        if isinstance(loader.dataset, Batches):
            loader.dataset.epoch = 0  # every candidate sees the same batches
    model_cfg = mdl.ModelConfig(d.img_dim, d.txt_dim, len(d.label_names), cfg.hidden, cfg.dropout, cfg.family,
                                cfg.depth, standardize=norm is not None)
    n_train = len(d.index(TRAIN))
    max_epochs, patience = budget(cfg, n_train)
    lit = LitFusion(model_cfg, cfg, pos_weight, total_steps=max_epochs * -(-n_train // cfg.batch_size) + 1)
    if norm is not None:
        lit.model.norm.load_state_dict(norm.state_dict())
    report = EpochReport(active, cfg.select_on, name if tag else "", race)
    log.info("%sbudget: at most %d epochs (%d steps each), patience %d epochs, selection on %s",
             f"[{name}] " if tag else "", max_epochs, -(-n_train // cfg.batch_size), patience,
             "validation macro-F1 (tuned thresholds)" if cfg.select_on == "f1" else "validation loss")
    monitor, mode = ("val_macro_f1_tuned", "max") if cfg.select_on == "f1" else ("val_loss", "min")
    stop = L.pytorch.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False, precision=precision,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, deterministic=True, callbacks=[stop, report],
                        max_time={"seconds": max(1, int(seconds_left))})
    trainer.fit(lit, *loaders)
    lit.model.load_state_dict(report.best_state)
    return Fitted(name, lit.model, report, model_cfg, cfg, max_epochs, patience, time.perf_counter() - t0)


def read_overrides(config_json: Path | None, pairs: dict) -> dict:
    """Hyper-parameters: a JSON file, then explicit CLI flags on top."""
    base = json.loads(Path(config_json).read_text()) if config_json else {}
    base.update({k: v for k, v in pairs.items() if v is not None})
    return base
