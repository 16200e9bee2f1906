"""`tasks train`: fit the fusion MLP with PyTorch Lightning, tune per-class thresholds on val.

Data is small (70k x 1280 floats = 360 MB) and lives in memory as one fused tensor; batches
are index slices of it, not a DataLoader collating 64 single rows per step. That, a larger
batch with a higher learning rate, and bf16 autocast on CPUs with native bf16 are where the
speed-up over the seed recipe comes from (bench/train_speed.py measures both side by side).
"""
from __future__ import annotations

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
from tasks import metrics, model as mdl, tracking
from tasks.fsutil import atomic_dir, atomic_write_json
from tasks.rundir import HISTORY, SUMMARY, THRESHOLDS
from tasks.split import TRAIN, VAL

log = logging.getLogger(__name__)
# Lightning's banner lines ("GPU available", tips) are noise in a task log.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r".*(LeafSpec|does not have many workers).*")


@dataclasses.dataclass
class TrainConfig:
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 512
    lr: float = 3e-3
    hidden: int = 256
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

    @classmethod
    def from_overrides(cls, overrides: dict) -> "TrainConfig":
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise ValueError(f"unknown hyper-parameters: {sorted(unknown)} (known: {sorted(fields)})")
        cfg = cls(**overrides)
        if cfg.loader not in ("tensor", "dataloader"):
            raise ValueError("loader must be 'tensor' or 'dataloader'")
        if cfg.precision not in ("auto", "32", "bf16-mixed"):
            raise ValueError("precision must be 'auto', '32' or 'bf16-mixed'")
        if cfg.batch_size < 1 or cfg.max_epochs < 1 or cfg.lr <= 0:
            raise ValueError("batch_size, max_epochs and lr must be positive")
        return cfg


def resolve_precision(precision: str) -> str:
    """bf16 autocast halves matmul cost on CPUs with native bf16 (AVX512-BF16/AMX) and is
    slow emulation elsewhere, so "auto" asks oneDNN. Weights stay float32 either way."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


class TensorBatches(torch.utils.data.IterableDataset):
    """Yields shuffled (img, txt, y) batches sliced from in-memory tensors."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, shuffle: bool, seed: int):
        self.tensors, self.batch_size, self.shuffle, self.seed, self.epoch = tensors, batch_size, shuffle, seed, 0

    def __iter__(self):
        n = len(self.tensors[0])
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
            self.epoch += 1
        for s in range(0, n, self.batch_size):
            if self.shuffle:
                idx = order[s:s + self.batch_size]
                yield tuple(t[idx] for t in self.tensors)
            else:
                yield tuple(t[s:s + self.batch_size] for t in self.tensors)


class LitFusion(L.LightningModule):
    def __init__(self, model_cfg: mdl.ModelConfig, cfg: TrainConfig, pos_weight: torch.Tensor | None):
        super().__init__()
        self.model = mdl.FusionMLP(model_cfg)
        self.cfg = cfg
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch, _):
        x, y = batch  # x = concat(img, txt), built once per split, not per step
        loss = self.loss(self.model.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        logits = self.model.net(x).float()
        self.log("val_loss", self.loss(logits, y), on_step=False, on_epoch=True, batch_size=len(y))
        self._val.append((logits.detach(), y))

    def on_validation_epoch_end(self):
        logits = torch.cat([v[0] for v in self._val])
        y = torch.cat([v[1] for v in self._val])
        self._val.clear()
        self.log("val_macro_f1", metrics.macro_f1(y.numpy(), torch.sigmoid(logits).numpy(), 0.5))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=self.cfg.lr_factor,
                                                           patience=self.cfg.lr_patience)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


class EpochReport(L.Callback):
    """One plain log line per epoch (readable in Airflow task logs), history, MLflow, best weights."""

    def __init__(self, active_run):
        self.history: list[dict] = []
        self.best_loss, self.best_state, self.best_epoch = float("inf"), None, -1
        self.active_run = active_run
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):  # runs after the epoch's validation
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        row = {"epoch": trainer.current_epoch + 1, "train_loss": m.get("train_loss", float("nan")),
               "val_loss": m["val_loss"], "val_macro_f1_at_0.5": m["val_macro_f1"],
               "lr": trainer.optimizers[0].param_groups[0]["lr"], "seconds": time.perf_counter() - self._t0}
        self._t0 = time.perf_counter()
        self.history.append(row)
        if row["val_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = row["val_loss"], row["epoch"]
            self.best_state = copy.deepcopy(pl_module.model.state_dict())
        log.info("epoch %d/%d train_loss=%.4f val_loss=%.4f val_macro_f1@0.5=%.4f lr=%.2e %.1fs",
                 row["epoch"], trainer.max_epochs, row["train_loss"], row["val_loss"],
                 row["val_macro_f1_at_0.5"], row["lr"], row["seconds"])
        tracking.log_metrics(self.active_run, {k.replace("@", "_at_"): v for k, v in row.items() if k != "epoch"},
                             step=row["epoch"])


def _loader(arrays: tuple[np.ndarray, np.ndarray], cfg: TrainConfig, shuffle: bool, batch_size: int):
    tensors = tuple(torch.from_numpy(a) for a in arrays)
    if cfg.loader == "dataloader":
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=batch_size,
                                           shuffle=shuffle)
    return torch.utils.data.DataLoader(TensorBatches(tensors, batch_size, shuffle, cfg.seed), batch_size=None)


def train(data: list[Path], out: Path, cfg: TrainConfig, tracking_uri: str | None = None,
          run_name: str | None = None) -> dict:
    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)
    d = ds.load(data, seed=cfg.split_seed)
    train_xy, val_xy = d.part_x(TRAIN), d.part_x(VAL)
    if len(train_xy[1]) == 0 or len(val_xy[1]) == 0:
        raise ValueError(f"{data}: too few rows for a train/val split ({len(d.ids)} rows)")
    log.info("data %s: %d rows (train %d, val %d), %d labels, dims %d+%d", d.version, len(d.ids),
             len(train_xy[1]), len(val_xy[1]), len(d.label_names), d.img_dim, d.txt_dim)
    pos_weight = None
    if cfg.pos_weight > 0:
        pos = train_xy[1].sum(0)
        pos_weight = torch.from_numpy(np.clip((len(train_xy[1]) - pos) / np.maximum(pos, 1), 1, cfg.pos_weight)
                                      .astype(np.float32))
    model_cfg = mdl.ModelConfig(d.img_dim, d.txt_dim, len(d.label_names), cfg.hidden, cfg.dropout)
    precision = resolve_precision(cfg.precision)
    params = {**dataclasses.asdict(cfg), "precision_used": precision, "data_version": d.version, "drops": ",".join(d.drops),
              "git_commit": tracking.git_commit(), "rows_train": len(train_xy[1]), "rows_val": len(val_xy[1])}
    with tracking.run(tracking_uri, run_name=run_name) as active, atomic_dir(out) as tmp:
        tracking.log_params(active, params)
        lit = LitFusion(model_cfg, cfg, pos_weight)
        report = EpochReport(active)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=cfg.max_epochs, logger=False, precision=precision,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, deterministic=True,
                            callbacks=[L.pytorch.callbacks.EarlyStopping("val_loss", patience=cfg.patience),
                                       report])
        trainer.fit(lit, _loader(train_xy, cfg, True, cfg.batch_size), _loader(val_xy, cfg, False, 8192))
        lit.model.load_state_dict(report.best_state)
        fit_seconds = time.perf_counter() - t_start

        val_img, val_txt, val_y = d.part(VAL)
        val_proba = mdl.predict_proba(lit.model, val_img, val_txt)
        thr = metrics.tune_thresholds(val_y, val_proba) if cfg.tune_thresholds \
            else np.full(len(d.label_names), 0.5, np.float32)
        f1_fixed, f1_tuned = metrics.macro_f1(val_y, val_proba, 0.5), metrics.macro_f1(val_y, val_proba, thr)
        mdl.save(lit.model, tmp)
        atomic_write_json(tmp / THRESHOLDS, {"label_names": d.label_names, "thresholds": thr.tolist(),
                                             "tuned": cfg.tune_thresholds})
        atomic_write_json(tmp / HISTORY, report.history)
        summary = {"params": params, "model": dataclasses.asdict(model_cfg), "best_epoch": report.best_epoch, "epochs_run": len(report.history),
                   "best_val_loss": report.best_loss, "val_macro_f1_at_0.5": f1_fixed,
                   "val_macro_f1_tuned": f1_tuned, "fit_seconds": fit_seconds,
                   "seconds": time.perf_counter() - t_start, "data_version": d.version,
                   "tracking_uri": tracking_uri if active else None,
                   "mlflow_run_id": active.info.run_id if active else None}
        atomic_write_json(tmp / SUMMARY, summary)
        tracking.log_metrics(active, {"best_val_loss": report.best_loss, "val_macro_f1_at_0.5": f1_fixed,
                                      "val_macro_f1_tuned": f1_tuned, "train_seconds": summary["seconds"]})
        tracking.log_artifacts(active, tmp, "model")
    log.info("trained in %.1fs (best epoch %d of %d): val macro-F1 %.4f at 0.5, %.4f tuned -> %s",
             summary["seconds"], report.best_epoch, len(report.history), f1_fixed, f1_tuned, out)
    return summary


def read_overrides(config_json: Path | None, pairs: dict) -> dict:
    """Hyper-parameters: a JSON file, then explicit CLI flags on top."""
    base = json.loads(Path(config_json).read_text()) if config_json else {}
    base.update({k: v for k, v in pairs.items() if v is not None})
    return base
