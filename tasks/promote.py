"""`tasks promote`: make a served candidate the champion.

Writes the champion pointer (state/champion.json: run dir, Triton version, metrics) atomically;
evaluation of the next candidate compares against it. When tracking is on, the run's ONNX
model is registered in the MLflow model registry and gets the alias `champion`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from tasks.fsutil import atomic_write_json
from tasks.rundir import RunDir

log = logging.getLogger(__name__)
ALIAS = "champion"


def read_pointer(pointer: Path) -> dict | None:
    pointer = Path(pointer)
    return json.loads(pointer.read_text()) if pointer.exists() else None


def promote(run_dir: Path, pointer: Path, version: int | None, registered_model: str = "social-tone",
            tracking_uri: str | None = None, metrics_json: Path | None = None) -> dict:
    run_dir = Path(run_dir)
    summary = RunDir(run_dir).summary()
    uri = tracking_uri if tracking_uri and tracking_uri != "none" else None
    registry_version = None
    model = RunDir(run_dir).mlflow_model()  # the ONNX model export-onnx logged, in this store
    if uri and model.get("tracking_uri") != uri:
        log.warning("no ONNX model logged to %s for %s: not registered in MLflow", uri, run_dir)
    elif uri:
        import mlflow
        from mlflow import MlflowClient
        mlflow.set_tracking_uri(uri)
        mv = mlflow.register_model(model["model_uri"], registered_model)
        client = MlflowClient(uri)
        client.set_registered_model_alias(registered_model, ALIAS, mv.version)
        if version is not None:
            client.set_model_version_tag(registered_model, mv.version, "triton_version", str(version))
        registry_version = int(mv.version)
        log.info("MLflow: %s version %s is now @%s", registered_model, mv.version, ALIAS)
    previous = read_pointer(pointer)
    record = {"run": str(run_dir), "triton_version": version, "mlflow_run_id": summary.get("mlflow_run_id"),
              "registered_model": registered_model if registry_version else None,
              "registry_version": registry_version, "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
              "previous_run": previous["run"] if previous else None}
    if metrics_json and Path(metrics_json).exists():
        record["test_macro_f1"] = json.loads(Path(metrics_json).read_text())["models"]["candidate"]["macro_f1"]
    atomic_write_json(pointer, record)
    return record
