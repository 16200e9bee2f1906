"""The one owner of a run's files: their names, typed readers and writers. Standard library
only (numpy is imported lazily, by the check-rows methods alone), so the DAG side and the
light steps (gate, promote, publish) name a file without importing the module that writes it.

A run is `runs/<key>/` (RunPaths, made by the DAG's claim/prepare step):

  schema.json         the dataset's schema when the drop was claimed     (claim: what validate checks against,
                      so that validate mounts the drop and this run only, not the dataset)
  validation.json     the drop's validation report                      (validate)
  model/              the trained model: a RunDir                       (train, export, convert)
  eval/               metrics.json, blessing.json, plots, model card    (evaluate, gate)
  published.json      the Triton version publish wrote                  (publish)

and the model directory (RunDir):

  model.pt, model_config.json   weights (a state dict) and architecture      (train)
  thresholds.json               label names + per-class thresholds            (train)
  history.json                  per-epoch curves                              (train)
  train_summary.json            params, data version, MLflow run id           (train)
  check_rows.npz                the rows every parity and canary check uses   (train)
  lineage.json                  drops -> data version -> runs -> artifacts    (train, export, promote)
  model.onnx, onnx_parity.json  the ONNX graph and its parity report          (export-onnx)
  mlflow_model.json             the ONNX model logged to MLflow               (export-onnx)
  model.plan, tensorrt.json     the TensorRT plan and its report              (convert-tensorrt)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from tasks import layout
from tasks.errors import CheckFailed
from tasks.fsutil import atomic_write_bytes, atomic_write_json

WEIGHTS, CONFIG = "model.pt", "model_config.json"
THRESHOLDS, HISTORY, SUMMARY = "thresholds.json", "history.json", "train_summary.json"
CHECK_ROWS, LINEAGE = "check_rows.npz", "lineage.json"
ONNX, PARITY_REPORT, MLFLOW_MODEL = "model.onnx", "onnx_parity.json", "mlflow_model.json"
PLAN, TENSORRT_REPORT = "model.plan", "tensorrt.json"
METRICS, BLESSING, MODEL_CARD = "metrics.json", "blessing.json", "model_card.md"  # in the evaluation directory
MODEL_DIR, EVAL_DIR, VALIDATION, PUBLISHED = "model", "eval", "validation.json", "published.json"
SCHEMA = layout.SCHEMA  # the dataset's (tasks/layout.py), and its copy in a run


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """runs/<key>/: every path the steps of one DAG run pass each other."""
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @staticmethod
    def published_of(model_dir: Path) -> Path | None:
        """The published.json of the run whose model dir this is (None: not a run's model dir)."""
        model_dir = Path(model_dir)
        return model_dir.parent / PUBLISHED if model_dir.name == MODEL_DIR else None

    def as_dict(self) -> dict[str, str]:
        """What claim/prepare return (one XCom per key): the DAG wires steps with these."""
        r = self.root
        return {"key": r.name, "run_dir": str(r), "model_dir": str(r / MODEL_DIR), "eval": str(r / EVAL_DIR),
                "metrics": str(r / EVAL_DIR / METRICS), "report": str(r / VALIDATION), "schema": str(r / SCHEMA),
                "published": str(r / PUBLISHED)}


@dataclasses.dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def onnx(self) -> Path: return self.path / ONNX
    @property
    def plan(self) -> Path: return self.path / PLAN

    def _json(self, name: str):
        return json.loads((self.path / name).read_text())

    def _write(self, name: str, obj) -> Path:
        atomic_write_json(self.path / name, obj)
        return self.path / name

    # -- train
    def summary(self) -> dict: return self._json(SUMMARY)
    def write_summary(self, s: dict) -> Path: return self._write(SUMMARY, s)
    def history(self) -> list: return self._json(HISTORY)
    def write_history(self, h: list) -> Path: return self._write(HISTORY, h)
    def model_config(self) -> dict: return self._json(CONFIG)
    def write_model_config(self, cfg: dict) -> Path: return self._write(CONFIG, cfg)

    def thresholds(self) -> dict:
        """{"label_names", "thresholds", "tuned", "methods", "val_support", "global_threshold"}."""
        return self._json(THRESHOLDS)

    def write_thresholds(self, label_names: list[str], thresholds: list[float], *, methods: list[str],
                         val_support: list[int], global_threshold: float | None = None) -> Path:
        """methods, per class: "shrunk" (tuned on val, pulled toward the global threshold),
        "global" (too few val positives) or "fixed" (0.5, untuned)."""
        return self._write(THRESHOLDS, {"label_names": label_names, "thresholds": [float(t) for t in thresholds],
                                        "tuned": any(m != "fixed" for m in methods), "methods": methods,
                                        "val_support": [int(n) for n in val_support],
                                        "global_threshold": global_threshold})

    def write_check_rows(self, img, txt, ids, source: str) -> Path:
        """The rows ONNX parity, TensorRT parity and the Triton canary all use: written once by
        train (which has the data in hand), so no later step reads the dataset again."""
        import io

        import numpy as np
        buf = io.BytesIO()
        np.savez(buf, img=np.ascontiguousarray(img, np.float32), txt=np.ascontiguousarray(txt, np.float32),
                 ids=np.asarray(ids).astype(str), source=np.asarray(source))
        atomic_write_bytes(self.path / CHECK_ROWS, buf.getvalue())
        return self.path / CHECK_ROWS

    def check_rows(self, n: int | None = None):
        """(img, txt, digest, source) of the first n check rows (all by default); digest is the
        sha256 of their bytes, so every report can show it checked the same rows."""
        import numpy as np
        with np.load(self.path / CHECK_ROWS, allow_pickle=False) as z:
            img, txt, source = z["img"][:n], z["txt"][:n], str(z["source"])
        return img, txt, rows_digest(img, txt), source

    # -- export, convert, promote
    def mlflow_model(self) -> dict:
        """The ONNX model export-onnx logged ({} when it logged none)."""
        p = self.path / MLFLOW_MODEL
        return json.loads(p.read_text()) if p.exists() else {}

    def write_mlflow_model(self, record: dict) -> Path: return self._write(MLFLOW_MODEL, record)
    def write_parity_report(self, report: dict) -> Path: return self._write(PARITY_REPORT, report)

    def lineage(self) -> dict:
        p = self.path / LINEAGE
        return json.loads(p.read_text()) if p.exists() else {}

    def add_lineage(self, **hops) -> dict:
        """Merge hops into lineage.json (each step adds what it made)."""
        record = {**self.lineage(), **hops}
        self._write(LINEAGE, record)
        return record


class NotBlessed(CheckFailed):
    """A run's model that its gate did not bless (or that never went through one): exit code 4."""


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """eval/: metrics.json (evaluate) and blessing.json (gate), with readers."""
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def metrics(self) -> dict: return json.loads((self.path / METRICS).read_text())

    def macro_f1(self, model: str = "candidate") -> float | None:
        """Test macro-F1 of "candidate", "champion" or "baseline" (None: not evaluated)."""
        return (self.metrics()["models"].get(model) or {}).get("macro_f1")

    def blessing(self) -> dict | None:
        p = self.path / BLESSING
        return json.loads(p.read_text()) if p.is_file() else None

    def write_blessing(self, b: dict) -> Path:
        atomic_write_json(self.path / BLESSING, b)
        return self.path / BLESSING


def evaluation_of(model_dir: Path) -> Evaluation | None:
    """The evaluation of the run whose model dir this is (None: not a run's model dir)."""
    model_dir = Path(model_dir)
    return Evaluation(model_dir.parent / EVAL_DIR) if model_dir.name == MODEL_DIR else None


def require_blessed(model_dir: Path) -> dict | None:
    """The blessing of the run this model belongs to, as TFX's Pusher asks for one: raises
    NotBlessed when its gate said no or never ran (a forced blessing is a blessing, and says
    so). None for a model dir outside a run (trained by hand: nothing gated it)."""
    ev = evaluation_of(model_dir)
    if ev is None:
        return None
    b = ev.blessing()
    if b is None:
        raise NotBlessed(f"{model_dir}: the run has no {EVAL_DIR}/{BLESSING}: its gate has not run")
    if not b.get("blessed"):
        raise NotBlessed(f"{model_dir}: the run is not blessed ({'; '.join(b.get('reasons', []))})")
    return b


def rows_digest(img, txt) -> str:
    h = hashlib.sha256()
    for a in (img, txt):
        h.update(memoryview(a.tobytes()))
    return h.hexdigest()[:16]
