"""The one DockerOperator factory: image, mounts, env, network, user and hardening in one place."""
from __future__ import annotations

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import Mount

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


def task(s: Settings, task_id: str, command: list[str], **kwargs) -> DockerOperator:
    """A step of `python -m tasks` in the task image. The last stdout line (JSON) goes to XCom."""
    return DockerOperator(
        task_id=task_id,
        image=s.task_image,
        command=["python", "-m", "tasks", *command],
        docker_url=s.docker_url,
        network_mode=s.network_mode,  # "host": Triton and MLflow listen on 127.0.0.1 only
        mounts=[Mount(target=str(s.data_root), source=str(s.host_data_root), type="bind")],
        mount_tmp_dir=False,
        environment=container_env(s),
        user=s.container_user,
        privileged=False,
        auto_remove="success",
        do_xcom_push=True,
        skip_on_exit_code=kwargs.pop("skip_on_exit_code", None),
        **kwargs,
    )
