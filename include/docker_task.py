"""The one DockerOperator factory: image, mounts, env, network, user, limits and hardening.

Least privilege per step: the data root is mounted read-only, and only the folders a step
writes (`writes`) are mounted read-write on top. Steps that need no network (validation of
untrusted input first) get none. Every container runs with no capabilities, no-new-privileges,
a read-only root filesystem (a tmpfs at /tmp and /var/tmp), a memory, pids and hard CPU limit;
the task has an execution timeout, and the container is removed whatever the outcome (logs
stay in Airflow).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Sequence

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import DeviceRequest, Mount, Ulimit

from include.settings import Settings, hand_over
from tasks import env
from tasks.errors import EXIT_SKIPPED  # noqa: F401  "does not apply" (no GPU, not blessed) -> Airflow skip
from tasks.rundir import RunDir

RETRY_DELAY = dt.timedelta(seconds=30)
TI_LABEL = "social-tone.task-instance"  # dag/task/run[/map index] of the container's task instance


class TaskOperator(DockerOperator):
    """A DockerOperator that creates its read-write mount sources before the container starts
    (Docker refuses a bind mount whose source does not exist yet) and hands them to the
    containers' user. Its XComs are the command's JSON result, one per key (`op.output["model_dir"]`).
    With `lineage_extra` (a model dir), its outlets' asset events carry that model's
    lineage.json as their extra."""

    template_fields = (*DockerOperator.template_fields, "lineage_extra")

    def __init__(self, *, settings: Settings, create_dirs: Sequence[str] = (), lineage_extra=None, **kwargs):
        super().__init__(multiple_outputs=True, **kwargs)
        self.settings = settings
        self.create_dirs = list(create_dirs)
        self.lineage_extra = lineage_extra

    @property
    def hardening(self) -> dict:
        """What the provider's host config lacks (docker-py create_host_config arguments)."""
        s = self.settings
        tmp = f"rw,nosuid,nodev,size={s.task_tmp}"
        return {"pids_limit": s.task_pids, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
                "read_only": True, "tmpfs": {"/tmp": tmp, "/var/tmp": tmp}, "nano_cpus": int(s.task_cpus * 1e9)}

    def execute(self, context):
        ti = context.get("ti")
        if ti is not None:  # (none when called directly, outside a DAG run)
            key = "/".join([ti.dag_id, ti.task_id, ti.run_id] + ([str(ti.map_index)] if ti.map_index >= 0 else []))
            self.labels = {**(self.labels or {}), TI_LABEL: key}
            self.remove_stale_containers(key)
        for d in self.create_dirs:
            Path(d).mkdir(parents=True, exist_ok=True)
            hand_over(self.settings, Path(d))
        result = last_json(super().execute(context))  # the command's JSON result: one XCom per key
        if self.lineage_extra:
            lineage = RunDir(self.lineage_extra).lineage()
            for asset in self.outlets:
                context["outlet_events"][asset].extra = lineage
        return result

    def remove_stale_containers(self, key: str) -> None:
        """An earlier try whose worker died (killed, host lost) leaves its container running:
        it would write the same run folder as this try. Stop and remove it first."""
        for c in self.cli.containers(all=True, filters={"label": f"{TI_LABEL}={key}"}):
            self.log.warning("removing container %s of an earlier try of %s", c["Id"][:12], key)
            self.cli.remove_container(c["Id"], force=True)

    def _run_image_with_mounts(self, target_mounts, add_tmp_variable: bool):
        # the provider passes a fixed set of host-config arguments: add ours to the host config
        # it builds (its client is cached)
        cli = self.cli
        create = cli.create_host_config
        cli.create_host_config = lambda *a, **kw: create(*a, **kw, **self.hardening)
        try:
            return super()._run_image_with_mounts(target_mounts, add_tmp_variable)
        finally:
            cli.create_host_config = create


def last_json(lines) -> dict:
    """The command's result: the last stdout line that is a JSON object. Docker merges the
    container's stdout and stderr, so a log line may come after it."""
    for line in reversed(lines if isinstance(lines, list) else [lines] if lines else []):
        line = line.strip() if isinstance(line, str) else ""
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def container_env(s: Settings) -> dict[str, str]:
    """Every `step` variable of tasks/env.py, from the settings (a test checks none is missing)."""
    step = {"MLFLOW_TRACKING_URI": s.mlflow_uri,
            "SOCIAL_TONE_MLFLOW_ARTIFACTS": str(s.mlflow_dir / "artifacts"),
            "SOCIAL_TONE_MODEL_NAME": s.model_name,
            "SOCIAL_TONE_TRITON_GRPC": s.triton_grpc,
            "SOCIAL_TONE_TRITON_EXECUTION_ENV": s.triton_execution_env,
            "SOCIAL_TONE_ORT_THREADS": env.get("SOCIAL_TONE_ORT_THREADS"),
            "DVC_NO_ANALYTICS": env.VARS["DVC_NO_ANALYTICS"].default}
    return {k: v for k, v in step.items() if v} | {
        "HOME": "/tmp", "GIT_PYTHON_REFRESH": "quiet",  # no git in the image; the commit comes from the image's env
        # the container may run as a uid without a passwd entry (the data root's owner):
        # getpass.getuser() (DVC's cache dir) takes this instead of failing
        "USER": "social-tone",
        "PYTHONUNBUFFERED": "1"}


def _host(s: Settings, path: Path) -> str:
    """The same folder as the Docker host sees it (the engine resolves bind sources)."""
    return str(s.host_data_root / Path(path).relative_to(s.data_root))


def task(s: Settings, task_id: str, command: list[str], *, writes: Sequence[Path] = (),
         reads: Sequence[Path] | None = None, network: bool = True,
         gpu: bool = False, triton_admin: bool = False, alerts: bool = False, lineage_extra=None,
         **kwargs) -> DockerOperator:
    """A step of `python3 -m tasks` in the task image. The last stdout line (JSON) goes to XCom.

    writes: the folders under the data root the step writes; the rest is read-only.
    reads: the folders it reads, when that is not the whole data root (validation of untrusted
    input sees its drop and its run only).
    network=False: no network at all (steps that read files only).
    gpu=True: when the host has one (SOCIAL_TONE_GPU), the step runs in the TensorRT image with
    every GPU; otherwise in the task image, where a GPU step skips itself (exit 5).
    triton_admin=True: the step may load/unload models (Triton's admin secret, in the
    container's private environment: not a templated field, so never shown in the UI).
    alerts=True: the alert hooks (SOCIAL_TONE_ALERT_WEBHOOK / _COMMAND), the same private way.
    MLflow credentials, when set, go to every step the same private way.
    """
    on_gpu = gpu and s.gpu
    secret = {"SOCIAL_TONE_TRITON_ADMIN_SECRET": s.triton_admin_secret} if triton_admin and s.triton_admin_secret \
        else {}
    if alerts:
        secret |= {k: v for k, v in (("SOCIAL_TONE_ALERT_WEBHOOK", s.alert_webhook),
                                     ("SOCIAL_TONE_ALERT_COMMAND", s.alert_command)) if v}
    if s.mlflow_password:  # MLflow basic auth
        secret |= {"MLFLOW_TRACKING_USERNAME": s.mlflow_username or "", "MLFLOW_TRACKING_PASSWORD": s.mlflow_password}
    mounts = [Mount(target=str(r), source=_host(s, r), type="bind", read_only=True) for r in reads] \
        if reads is not None else [Mount(target=str(s.data_root), source=str(s.host_data_root), type="bind",
                                         read_only=True)]
    mounts += [Mount(target=str(w), source=_host(s, w), type="bind", read_only=False) for w in writes]
    return TaskOperator(
        settings=s,
        lineage_extra=lineage_extra,
        task_id=task_id,
        image=s.tensorrt_image if on_gpu else s.task_image,
        device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if on_gpu else None,
        command=["python3", "-m", "tasks", *command],
        docker_url=s.docker_url,
        network_mode=s.network_mode if network else "none",
        mounts=mounts,
        create_dirs=[str(w) for w in (*writes, *(reads or ()))],
        mount_tmp_dir=False,
        environment=container_env(s),
        private_environment=secret or None,
        user=s.container_user,
        privileged=False,
        mem_limit=s.task_memory,
        ulimits=[Ulimit(name="nofile", soft=4096, hard=4096)],
        auto_remove="force",  # removed whatever the outcome; the log is in Airflow
        execution_timeout=kwargs.pop("execution_timeout", dt.timedelta(minutes=s.task_timeout_minutes)),
        # a retry (a lost worker, a busy Triton) starts after 30 s, not Airflow's 5 min
        retry_delay=kwargs.pop("retry_delay", RETRY_DELAY),
        do_xcom_push=True,
        xcom_all=True,  # every line: last_json picks the result
        skip_on_exit_code=kwargs.pop("skip_on_exit_code", None),
        **kwargs,
    )
