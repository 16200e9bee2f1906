"""Every environment variable the task code reads, declared once (standard library only).

`source` says who sets it:
  step    forwarded to every task container by include/docker_task.py (from include/settings.py)
  secret  forwarded in the container's private environment, to the steps that need it only
  image   set by the task image (docker/Dockerfile.task)
  server  read by the Triton server process (`tasks serve`) and its model code

Task code reads them through `get`, never os.environ directly (tests/test_contract.py checks),
so an undeclared variable is a KeyError here, not a setting nobody forwards.
"""
from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Var:
    name: str
    source: str
    default: str | None = None
    help: str = ""


VARS = {v.name: v for v in (
    Var("MLFLOW_TRACKING_URI", "step", None, "MLflow tracking URI (--tracking-uri overrides; 'none' = off)"),
    Var("MLFLOW_TRACKING_USERNAME", "secret", None, "MLflow basic auth (read by mlflow)"),
    Var("MLFLOW_TRACKING_PASSWORD", "secret", None, "MLflow basic auth (read by mlflow)"),
    Var("SOCIAL_TONE_MLFLOW_ARTIFACTS", "step", None, "artifact root of a sqlite-backed MLflow store"),
    Var("SOCIAL_TONE_MODEL_NAME", "step", "social_tone", "the model's name on Triton and in the MLflow registry"),
    Var("SOCIAL_TONE_TRITON_GRPC", "step", "127.0.0.1:8001", "Triton's gRPC address"),
    Var("SOCIAL_TONE_TRITON_EXECUTION_ENV", "step", None, "Python backend: env with numpy + onnxruntime"),
    Var("SOCIAL_TONE_TRITON_ADMIN_SECRET", "secret", None, "opens Triton's model-repository API (reload)"),
    Var("SOCIAL_TONE_ALERT_WEBHOOK", "secret", None, "monitor: POST alerts as JSON here"),
    Var("SOCIAL_TONE_ALERT_COMMAND", "secret", None, "monitor: run this with the alerts JSON on stdin"),
    Var("SOCIAL_TONE_GIT_COMMIT", "image", None, "the code version logged with each run"),
    Var("DVC_NO_ANALYTICS", "step", "1", "DVC sends no usage reports"),
    Var("SOCIAL_TONE_TRITON_EXTRA_ARGS", "server", "", "extra tritonserver flags"),
    Var("SOCIAL_TONE_TRITON_BACKEND", "server", "onnxruntime",
        "what serves the model: onnxruntime (Triton's C++ backend), python (fallback: ONNX Runtime in "
        "Triton's Python backend) or tensorrt_plan (GPU); publish writes it into each version's config"),
    Var("SOCIAL_TONE_ORT_THREADS", "step", "1", "ONNX Runtime threads per Triton model instance "
        "(publish writes it into the onnxruntime backend's config; the Python backend's model reads it)"),
)}

MODEL_NAME = VARS["SOCIAL_TONE_MODEL_NAME"].default


def get(name: str) -> str | None:
    """The variable's value, or its declared default (an empty value counts as unset)."""
    return os.environ.get(name) or VARS[name].default
