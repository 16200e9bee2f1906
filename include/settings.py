"""The one place for settings: environment -> typed, frozen Settings (see .env.example).

Paths: every container mounts the data root at the same path (SOCIAL_TONE_DATA_ROOT), so a
path in an XCom or a report means the same thing everywhere. When Airflow itself runs in a
container, the bind-mount *source* must be the path on the Docker host
(SOCIAL_TONE_HOST_DATA_ROOT): the Docker engine resolves it, not Airflow.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tasks import env as task_env  # the variables the task code reads, with their defaults
from tasks import monitoring as monitoring_layout  # stdlib only
from tasks.gate import FLOOR, TOLERANCE


get = task_env.get  # every variable is declared, with its default, in tasks/env.py


def _flag(name: str) -> bool:
    return get(name).lower() in ("1", "true", "yes")


@dataclasses.dataclass(frozen=True)
class Settings:
    data_root: Path
    host_data_root: Path
    task_image: str
    docker_url: str
    network_mode: str
    container_user: str
    triton_grpc: str
    triton_execution_env: str | None
    triton_backend: str
    gpu: bool
    tensorrt_image: str
    model_name: str
    mlflow_uri: str
    gate_tolerance: float
    gate_floor: float
    fs_conn_id: str
    poke_interval: int
    deferrable: bool
    task_memory: str
    task_pids: int
    task_cpus: float  # a hard limit (CFS quota), not shares
    task_tmp: str     # the tmpfs at /tmp (the root filesystem is read-only)
    task_timeout_minutes: int
    # the daily DAG: its first day, how long after a day's end its drop may still come, and
    # how long a day waits for a served model
    scoring_start: str
    scoring_grace_seconds: int
    model_wait_seconds: int
    # warcov_retrain pauses itself after this many failed runs in a row (a code or config bug
    # would otherwise strand one drop in processing/ per run)
    max_failed_runs: int
    # Triton's model-repository API answers only this secret (tasks/triton/client.py); handed
    # to the reload task alone, never rendered in the UI
    triton_admin_secret: str | None = dataclasses.field(default=None, repr=False)
    # alert hooks of `tasks monitor` (a webhook URL often holds a token): its private environment
    alert_webhook: str | None = dataclasses.field(default=None, repr=False)
    alert_command: str | None = dataclasses.field(default=None, repr=False)
    # MLflow basic auth (compose): every task's private environment
    mlflow_username: str | None = None
    mlflow_password: str | None = dataclasses.field(default=None, repr=False)

    # -- data root layout (docs/architecture.md) --
    @property
    def inbox(self) -> Path: return self.data_root / "inbox"
    @property
    def processing(self) -> Path: return self.data_root / "processing"
    @property
    def quarantine(self) -> Path: return self.data_root / "quarantine"
    @property
    def archive(self) -> Path: return self.data_root / "archive"
    @property
    def dataset(self) -> Path: return self.data_root / "dataset"
    @property
    def dvc_remote(self) -> Path: return self.data_root / "dvc-remote"
    @property
    def runs(self) -> Path: return self.data_root / "runs"
    @property
    def triton_repo(self) -> Path: return self.data_root / "triton"
    @property
    def state(self) -> Path: return self.data_root / "state"
    @property
    def champion_pointer(self) -> Path: return self.state / "champion.json"
    @property
    def scoring_incoming(self) -> Path: return self.data_root / "scoring" / "incoming"
    @property
    def predictions(self) -> Path: return self.data_root / "scoring" / "predictions"
    @property
    def monitoring(self) -> Path: return self.data_root / "monitoring"
    @property
    def dashboard(self) -> Path: return monitoring_layout.dashboard_file(self.monitoring)  # the monitor task keeps it
    @property
    def mlflow_dir(self) -> Path: return self.data_root / "mlflow"


TASK_USER = "10001:10001"  # the task image's own user (docker/Dockerfile.task)


def _owner(path: Path) -> str:
    """Task containers run as the data root's owner so bind-mounted files stay theirs, but
    never as root: when root owns the data root (or it does not exist yet) they run as the
    task image's own user, and the DAG side hands them the folders they write (hand_over)."""
    try:
        st = path.stat()
    except OSError:
        return TASK_USER
    return TASK_USER if st.st_uid == 0 else f"{st.st_uid}:{st.st_gid}"


def hand_over(s: Settings, path: Path) -> None:
    """Make a folder the DAG side created writable by the task containers' user (only a
    root worker can, and only a root-owned data root needs it)."""
    if os.geteuid() != 0 or not s.container_user:
        return
    uid, _, gid = s.container_user.partition(":")
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (int(uid), int(gid or uid)):
        os.lchown(path, int(uid), int(gid or uid))


def load() -> Settings:
    root = Path(get("SOCIAL_TONE_DATA_ROOT")).resolve()
    return Settings(
        data_root=root,
        host_data_root=Path(get("SOCIAL_TONE_HOST_DATA_ROOT") or root),
        task_image=get("SOCIAL_TONE_TASK_IMAGE"),
        docker_url=get("SOCIAL_TONE_DOCKER_URL"),
        network_mode=get("SOCIAL_TONE_NETWORK_MODE"),
        container_user=get("SOCIAL_TONE_CONTAINER_USER") or _owner(root),
        triton_grpc=get("SOCIAL_TONE_TRITON_GRPC"),
        triton_execution_env=get("SOCIAL_TONE_TRITON_EXECUTION_ENV"),
        triton_backend=get("SOCIAL_TONE_TRITON_BACKEND"),
        # a GPU on the Docker host: convert-tensorrt gets the TensorRT image and the device,
        # and the onnxruntime backend runs on KIND_GPU
        gpu=_flag("SOCIAL_TONE_GPU"),
        tensorrt_image=get("SOCIAL_TONE_TENSORRT_IMAGE"),
        model_name=get("SOCIAL_TONE_MODEL_NAME"),
        mlflow_uri=get("MLFLOW_TRACKING_URI") or f"sqlite:///{root}/mlflow/mlflow.db",
        gate_tolerance=float(get("SOCIAL_TONE_GATE_TOLERANCE") or TOLERANCE),
        gate_floor=float(get("SOCIAL_TONE_GATE_FLOOR") or FLOOR),
        fs_conn_id=get("SOCIAL_TONE_FS_CONN_ID"),
        poke_interval=int(get("SOCIAL_TONE_POKE_INTERVAL")),
        # sensors wait in the triggerer; off only where no triggerer runs (dag.test ignores
        # a deferred sensor's timeout)
        deferrable=_flag("SOCIAL_TONE_SENSOR_DEFERRABLE"),
        # limits for every task container (include/docker_task.py)
        task_memory=get("SOCIAL_TONE_TASK_MEMORY"),
        task_pids=int(get("SOCIAL_TONE_TASK_PIDS")),
        # (Docker refuses a quota above the host's CPUs)
        task_cpus=min(float(get("SOCIAL_TONE_TASK_CPUS")), float(os.cpu_count() or 1)),
        task_tmp=get("SOCIAL_TONE_TASK_TMP"),
        task_timeout_minutes=int(get("SOCIAL_TONE_TASK_TIMEOUT_MINUTES")),
        scoring_start=get("SOCIAL_TONE_SCORING_START"),
        scoring_grace_seconds=int(get("SOCIAL_TONE_SCORING_WAIT")),
        model_wait_seconds=int(get("SOCIAL_TONE_MODEL_WAIT")),
        max_failed_runs=int(get("SOCIAL_TONE_MAX_FAILED_RUNS")),
        triton_admin_secret=get("SOCIAL_TONE_TRITON_ADMIN_SECRET"),
        alert_webhook=get("SOCIAL_TONE_ALERT_WEBHOOK"),
        alert_command=get("SOCIAL_TONE_ALERT_COMMAND"),
        mlflow_username=get("MLFLOW_TRACKING_USERNAME"),
        mlflow_password=get("MLFLOW_TRACKING_PASSWORD"),
    )
