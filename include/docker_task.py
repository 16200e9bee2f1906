"""The one DockerOperator factory: image, mounts, env, network, user and hardening in one place."""
from __future__ import annotations

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import DeviceRequest, Mount

from include.settings import Settings

EXIT_SKIPPED = 5  # tasks/cli.py: "does not apply" (no GPU, not blessed) -> Airflow skip


def container_env(s: Settings) -> dict[str, str]:
    env = {"MLFLOW_TRACKING_URI": s.mlflow_uri,
           "SOCIAL_TONE_MLFLOW_ARTIFACTS": str(s.data_root / "mlflow" / "artifacts"),
           "SOCIAL_TONE_TRITON_GRPC": s.triton_grpc,
           "HOME": "/tmp", "DVC_NO_ANALYTICS": "1",
           "GIT_PYTHON_REFRESH": "quiet",  # no git in the image; the commit comes from the image's env
           "PYTHONUNBUFFERED": "1"}
    if s.triton_execution_env:
        env["SOCIAL_TONE_TRITON_EXECUTION_ENV"] = s.triton_execution_env
    return env


def task(s: Settings, task_id: str, command: list[str], *, gpu: bool = False, triton_admin: bool = False,
         **kwargs) -> DockerOperator:
    """A step of `python -m tasks` in the task image. The last stdout line (JSON) goes to XCom.

    gpu=True: when the host has one (SOCIAL_TONE_GPU), the step runs in the TensorRT image with
    every GPU; otherwise in the task image, where a GPU step skips itself (exit 5).
    triton_admin=True: the step may load/unload models (Triton's admin secret, in the
    container's private environment: not a templated field, so never shown in the UI).
    """
    on_gpu = gpu and s.gpu
    secret = {"SOCIAL_TONE_TRITON_ADMIN_SECRET": s.triton_admin_secret} if triton_admin and s.triton_admin_secret \
        else None
    return DockerOperator(
        task_id=task_id,
        image=s.tensorrt_image if on_gpu else s.task_image,
        device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])] if on_gpu else None,
        command=["python3", "-m", "tasks", *command],
        docker_url=s.docker_url,
        network_mode=s.network_mode,  # "host": Triton and MLflow listen on 127.0.0.1 only
        mounts=[Mount(target=str(s.data_root), source=str(s.host_data_root), type="bind")],
        mount_tmp_dir=False,
        environment=container_env(s),
        private_environment=secret,
        user=s.container_user,
        privileged=False,
        auto_remove="success",
        do_xcom_push=True,
        skip_on_exit_code=kwargs.pop("skip_on_exit_code", None),
        **kwargs,
    )
