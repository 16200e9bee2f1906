"""MLflow tracking: one run per model, opened by train; evaluate and export-onnx log into child
runs of it named for their step (the MLflow UI shows train > evaluate, export-onnx).

The URI comes from --tracking-uri or MLFLOW_TRACKING_URI (sqlite, file store or a server);
`none` turns tracking off (benchmarks).
"""
from __future__ import annotations

import contextlib
import logging
import subprocess
from pathlib import Path
from typing import Iterator

from tasks import env

log = logging.getLogger(__name__)
EXPERIMENT = "social-tone"


def git_commit() -> str:
    if sha := env.get("SOCIAL_TONE_GIT_COMMIT"):
        return sha
    with contextlib.suppress(Exception):
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    return "unknown"


@contextlib.contextmanager
def run(uri: str | None, run_name: str | None = None, run_id: str | None = None,
        experiment: str = EXPERIMENT, parent_id: str | None = None) -> Iterator[object | None]:
    """Yield an active mlflow run (or None when tracking is off): a new one named run_name, the
    run `run_id` resumed, or a new child run_name of the run `parent_id`."""
    if not uri or uri == "none":
        yield None
        return
    import mlflow
    mlflow.set_tracking_uri(uri)
    if run_id is None:
        # a sqlite store would put artifacts under the container's cwd: pin them to the data root
        artifacts = env.get("SOCIAL_TONE_MLFLOW_ARTIFACTS")
        if artifacts and uri.startswith("sqlite:") and mlflow.get_experiment_by_name(experiment) is None:
            with contextlib.suppress(Exception):  # another process may create it at the same moment
                mlflow.create_experiment(experiment, artifact_location=Path(artifacts).resolve().as_uri())
        mlflow.set_experiment(experiment)
    if parent_id is not None:
        with mlflow.start_run(run_id=parent_id), mlflow.start_run(run_name=run_name, nested=True) as active:
            log.info("mlflow run %s (%s, child of %s) at %s", active.info.run_id, run_name, parent_id, uri)
            yield active
        return
    with mlflow.start_run(run_id=run_id, run_name=run_name) as active:
        log.info("mlflow run %s at %s", active.info.run_id, uri)
        yield active


def log_params(active, params: dict) -> None:
    if active is not None:
        import mlflow
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})


def log_metrics(active, metrics: dict, step: int | None = None) -> None:
    if active is not None:
        import mlflow
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)


def log_summary(active, summary: dict, keys: tuple[str, ...]) -> None:
    """These keys of a step's summary: numbers as metrics, anything else as tags (nothing dropped)."""
    picked = {k: summary[k] for k in keys}
    numbers = {k: v for k, v in picked.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    log_metrics(active, numbers)
    set_tags(active, {k: v for k, v in picked.items() if k not in numbers})


def set_tags(active, tags: dict) -> None:
    if active is not None:
        import mlflow
        mlflow.set_tags({k: "" if v is None else str(v) for k, v in tags.items()})


def log_artifacts(active, folder: Path, artifact_path: str | None = None) -> None:
    if active is not None:
        import mlflow
        mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def resume_id(summary: dict, uri: str | None) -> str | None:
    """The training run to log into, if it lives in the same store as `uri` (else a new run)."""
    return summary.get("mlflow_run_id") if summary.get("tracking_uri") == (uri or None) else None
