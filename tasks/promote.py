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

from tasks.env import MODEL_NAME
from tasks.fsutil import atomic_write_json
from tasks.rundir import Evaluation, RunDir, require_blessed

log = logging.getLogger(__name__)
ALIAS = "champion"


def read_pointer(pointer: Path) -> dict | None:
    pointer = Path(pointer)
    return json.loads(pointer.read_text()) if pointer.exists() else None


def promote(run_dir: Path, pointer: Path, *, version: int | None, registered_model: str = MODEL_NAME,
            tracking_uri: str | None = None, metrics_json: Path | None = None) -> dict:
    """champion.json is the one source of truth for the champion; the MLflow alias mirrors it
    and is set after it is written (a failed alias update is repaired by promoting again).
    A run's model is promoted only when its gate blessed it (rundir.NotBlessed otherwise)."""
    blessing = require_blessed(run_dir)
    rd = RunDir(run_dir)
    summary = rd.summary()
    uri = tracking_uri if tracking_uri and tracking_uri != "none" else None
    mv = None
    model = rd.mlflow_model()  # the ONNX model export-onnx logged, in this store
    if uri and model.get("tracking_uri") != uri:
        log.warning("no ONNX model logged to %s for %s: not registered in MLflow", uri, rd.path)
    elif uri:
        import mlflow
        mlflow.set_tracking_uri(uri)
        mv = mlflow.register_model(model["model_uri"], registered_model)
    previous = read_pointer(pointer)
    record = {"run": str(rd.path), "triton_version": version, "mlflow_run_id": summary.get("mlflow_run_id"),
              "registered_model": registered_model if mv else None,
              "registry_version": int(mv.version) if mv else None,
              "promoted_at": dt.datetime.now(dt.timezone.utc).isoformat(),
              "previous_run": previous["run"] if previous else None}
    if blessing is not None:
        record["blessing"] = {k: blessing.get(k) for k in ("passed", "forced")}
    if metrics_json and Path(metrics_json).exists():
        record["test_macro_f1"] = Evaluation(Path(metrics_json).parent).macro_f1()
    lineage = rd.add_lineage(champion={k: record[k] for k in ("triton_version", "registered_model",
                                                              "registry_version", "promoted_at")}
                             | {"alias": ALIAS if mv else None, "pointer": str(pointer)})
    atomic_write_json(pointer, {**record, "lineage": lineage})
    if mv is not None:
        from mlflow import MlflowClient
        client = MlflowClient(uri)
        for k, v in lineage_tags(lineage).items():
            client.set_model_version_tag(registered_model, mv.version, k, v)
        client.set_registered_model_alias(registered_model, ALIAS, mv.version)
        log.info("MLflow: %s version %s is now @%s", registered_model, mv.version, ALIAS)
    return record


def lineage_tags(lineage: dict) -> dict[str, str]:
    """The hops of lineage.json as flat MLflow tags (lineage.data_version, lineage.onnx_sha256, ...)."""
    data, export, triton = lineage.get("data", {}), lineage.get("export", {}), lineage.get("triton", {})
    tags = {"data_version": data.get("version"), "dvc_md5": data.get("dvc_md5"),
            "drops": ",".join(d["id"] for d in data.get("drops", [])),
            "train_run_id": lineage.get("train", {}).get("mlflow_run_id"),
            "evaluate_run_id": lineage.get("evaluate", {}).get("mlflow_run_id"),
            "export_run_id": export.get("mlflow_run_id"), "onnx_sha256": export.get("onnx_sha256"),
            "triton_version": triton.get("version")}
    return {f"lineage.{k}": str(v)[:5000] for k, v in tags.items() if v is not None}
