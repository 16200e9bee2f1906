"""Every environment variable the task code reads, declared once (standard library only).

`source` says who sets it:
  step     forwarded to every task container by include/docker_task.py (from include/settings.py)
  secret   forwarded in the container's private environment, to the steps that need it only
  image    set by the task image (docker/Dockerfile.task)
  server   read by the Triton server process (`tasks serve`) and its model code
  dag      read on the Airflow side only (include/settings.py)
  compose  read by docker-compose.yaml and its scripts only (never by Python)
  harness  read by the build scripts, tests and benchmarks

Python reads them through `get`, never os.environ directly (tests/test_contract.py checks),
so an undeclared variable is a KeyError here, not a setting nobody forwards; .env.example and
docker-compose.yaml's defaults are checked against these declarations. A default of None
means "computed where it is read" (the help says from what).
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

    # -- the Airflow side (include/settings.py)
    Var("SOCIAL_TONE_DATA_ROOT", "dag", "/opt/social-tone/data", "the data root, as Airflow sees it"),
    Var("SOCIAL_TONE_HOST_DATA_ROOT", "dag", None, "the data root as the Docker host sees it (default: the data root)"),
    Var("SOCIAL_TONE_TASK_IMAGE", "dag", "social-tone/task:latest", "the task image (docker/build-images.sh)"),
    Var("SOCIAL_TONE_DOCKER_URL", "dag", "unix://var/run/docker.sock", "the Docker engine tasks run on"),
    Var("SOCIAL_TONE_NETWORK_MODE", "dag", "host", "the network task containers join"),
    Var("SOCIAL_TONE_CONTAINER_USER", "dag", None, "uid:gid of task containers (default: the data root's owner)"),
    Var("SOCIAL_TONE_GPU", "dag", "false", "a GPU on the Docker host: the TensorRT step and KIND_GPU"),
    Var("SOCIAL_TONE_TENSORRT_IMAGE", "dag", "social-tone/tensorrt:latest", "the TensorRT image (GPU hosts)"),
    Var("SOCIAL_TONE_GATE_TOLERANCE", "dag", None, "candidate >= champion - tolerance (default: tasks/gate.py)"),
    Var("SOCIAL_TONE_GATE_FLOOR", "dag", None, "candidate >= floor (default: tasks/gate.py)"),
    Var("SOCIAL_TONE_FS_CONN_ID", "dag", "fs_default", "the FileSensor's connection"),
    Var("SOCIAL_TONE_POKE_INTERVAL", "dag", "30", "seconds between sensor checks"),
    Var("SOCIAL_TONE_SENSOR_DEFERRABLE", "dag", "true", "sensors wait in the triggerer"),
    Var("SOCIAL_TONE_TASK_MEMORY", "dag", "8g", "memory limit per task container"),
    Var("SOCIAL_TONE_TASK_PIDS", "dag", "512", "pids limit per task container"),
    Var("SOCIAL_TONE_TASK_CPUS", "dag", "2", "hard CPU limit per task container (at most the host's CPUs)"),
    Var("SOCIAL_TONE_TASK_TMP", "dag", "1g", "tmpfs at /tmp per task container"),
    Var("SOCIAL_TONE_TASK_TIMEOUT_MINUTES", "dag", "180", "execution_timeout of every Docker task"),
    Var("SOCIAL_TONE_SCORING_START", "dag", "2026-11-01", "the daily scoring DAG's first day"),
    Var("SOCIAL_TONE_SCORING_WAIT", "dag", "21600", "seconds a day waits for its drop before it is skipped"),
    Var("SOCIAL_TONE_MODEL_WAIT", "dag", "86400", "seconds a day waits for a served model before failing"),
    Var("SOCIAL_TONE_MAX_FAILED_RUNS", "dag", "3", "warcov_retrain pauses itself after this many failed runs"),
    # -- docker-compose.yaml and scripts/compose-init.sh
    Var("SOCIAL_TONE_DATA_DIR", "compose", None, "host folder of the data root (compose-init asks)"),
    Var("SOCIAL_TONE_SECRETS_DIR", "compose", None, "host folder of the secret files"),
    Var("SOCIAL_TONE_AIRFLOW_PORT", "compose", "8080", "Airflow UI/API on 127.0.0.1"),
    Var("SOCIAL_TONE_MLFLOW_PORT", "compose", "5000", "MLflow UI on 127.0.0.1"),
    Var("SOCIAL_TONE_TRITON_HTTP_PORT", "compose", "8000", "Triton HTTP on 127.0.0.1"),
    Var("SOCIAL_TONE_TRITON_GRPC_PORT", "compose", "8001", "Triton gRPC on 127.0.0.1"),
    Var("SOCIAL_TONE_TRITON_METRICS_PORT", "compose", "8002", "Triton metrics on 127.0.0.1"),
    Var("SOCIAL_TONE_TASKS_NETWORK", "compose", "social-tone_tasks", "the network task containers join"),
    Var("SOCIAL_TONE_WORKER_CONCURRENCY", "compose", "4", "task slots per Celery worker"),
    Var("SOCIAL_TONE_HEARTBEAT_TIMEOUT", "compose", "90", "s before a dead worker's task is retried elsewhere"),
    Var("SOCIAL_TONE_TRITON_GPU_IMAGE", "compose", "nvcr.io/nvidia/tritonserver:24.10-py3",
        "the NGC Triton of docker-compose.gpu.yaml"),
    # -- build scripts, tests, benchmarks
    Var("SOCIAL_TONE_TASKS_PYTHON", "harness", None, "the tasks venv's python that Airflow tests and benches "
        "run steps with (default: .venv/bin/python)"),
    Var("SOCIAL_TONE_AIRFLOW_BIN", "harness", None, "the airflow executable scripts/demo.sh runs"),
    Var("SOCIAL_TONE_VENV", "harness", None, "the tasks venv docker/build-images.sh builds the ORT backend for"),
    Var("SOCIAL_TONE_GIT_MIRRORS", "harness", None, "a folder of git mirrors (<owner>+<name>/repo) for "
        "docker/build-ort-backend.sh's sources and bench/nab_corpus.py's NAB checkout"),
)}

MODEL_NAME = VARS["SOCIAL_TONE_MODEL_NAME"].default


def get(name: str) -> str | None:
    """The variable's value, or its declared default (an empty value counts as unset)."""
    return os.environ.get(name) or VARS[name].default
