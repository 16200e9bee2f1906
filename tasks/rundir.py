"""The one owner of a trained model's directory (`runs/<key>/model/`): its file names and
readers. Standard library only, so any step (and the light ones: gate, promote, publish) can
name a file without importing the module that writes it (no Lightning or matplotlib for a
string).

  model.pt, model_config.json   weights (a state dict) and architecture      (train)
  thresholds.json               label names + per-class thresholds            (train)
  history.json                  per-epoch curves                              (train)
  train_summary.json            params, data version, MLflow run id           (train)
  model.onnx, onnx_parity.json  the ONNX graph and its parity report          (export-onnx)
  mlflow_model.json             the ONNX model logged to MLflow               (export-onnx)
  model.plan, tensorrt.json     the TensorRT plan and its report              (convert-tensorrt)

The evaluation directory (`runs/<key>/eval/`) holds metrics.json and blessing.json.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

WEIGHTS, CONFIG = "model.pt", "model_config.json"
THRESHOLDS, HISTORY, SUMMARY = "thresholds.json", "history.json", "train_summary.json"
ONNX, PARITY_REPORT, MLFLOW_MODEL = "model.onnx", "onnx_parity.json", "mlflow_model.json"
PLAN, TENSORRT_REPORT = "model.plan", "tensorrt.json"
METRICS, BLESSING = "metrics.json", "blessing.json"  # in the evaluation directory


@dataclasses.dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def onnx(self) -> Path: return self.path / ONNX
    @property
    def plan(self) -> Path: return self.path / PLAN

    def _json(self, name: str) -> dict:
        return json.loads((self.path / name).read_text())

    def summary(self) -> dict: return self._json(SUMMARY)
    def history(self) -> list: return self._json(HISTORY)
    def thresholds(self) -> dict: return self._json(THRESHOLDS)  # {"label_names", "thresholds", ...}

    def mlflow_model(self) -> dict:
        """The ONNX model export-onnx logged ({} when it logged none)."""
        p = self.path / MLFLOW_MODEL
        return json.loads(p.read_text()) if p.exists() else {}
