"""docker-compose.yaml as configured (`docker-compose config`): valid with and without the GPU
override, loopback-only, socket behind a proxy, healthchecks, secrets, networks. The stack
itself is started for real by `make team-test` (tests/team)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")


@pytest.fixture(scope="module")
def env_file(tmp_path_factory):
    """.env as scripts/compose-init.sh writes it from .env.example (secrets generated)."""
    root = tmp_path_factory.mktemp("compose")
    env = root / ".env"
    env.write_text((REPO / ".env.example").read_text()
                   .replace("SOCIAL_TONE_DATA_DIR=/srv/social-tone/data", f"SOCIAL_TONE_DATA_DIR={root / 'data'}")
                   .replace("SOCIAL_TONE_SECRETS_DIR=/srv/social-tone/secrets",
                            f"SOCIAL_TONE_SECRETS_DIR={root / 'secrets'}"))
    subprocess.run(["bash", str(REPO / "scripts" / "compose-init.sh"), str(env)], check=True, capture_output=True,
                   cwd=REPO)
    return env


def clean_env() -> dict:
    """The shell's environment wins over --env-file in compose: drop what the tests set."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SOCIAL_TONE_", "MLFLOW_", "AIRFLOW"))}


def config(env_file, *files):
    args = ["docker-compose", "--env-file", str(env_file)]
    for f in files:
        args += ["-f", str(REPO / f)]
    p = subprocess.run(args + ["config"], capture_output=True, text=True, cwd=REPO, env=clean_env())
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def test_compose_refuses_to_start_without_generated_secrets():
    p = subprocess.run(["docker-compose", "--env-file", str(REPO / ".env.example"), "-f",
                        str(REPO / "docker-compose.yaml"), "config"], capture_output=True, text=True, cwd=REPO,
                       env=clean_env())
    assert p.returncode != 0 and "run scripts/compose-init.sh" in p.stderr


def test_compose_validates_with_and_without_the_gpu_override(env_file):
    cpu = config(env_file, "docker-compose.yaml")
    gpu = config(env_file, "docker-compose.yaml", "docker-compose.gpu.yaml")
    # every image of the default stack is built here (docker/build-images.sh --team): no pull
    assert {svc["image"] for svc in cpu["services"].values()} == {
        "social-tone/airflow:latest", "social-tone/postgres:latest", "social-tone/redis:latest",
        "social-tone/docker-proxy:latest", "social-tone/task:latest", "social-tone/triton-cpu:latest"}
    assert gpu["services"]["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:24.10")
    # GPU: every start (test below) runs triton-prepare, then the server loads the model
    triton = gpu["services"]["triton"]
    assert "--load-model=social_tone" in triton["command"][2] and "--exit-on-error=false" in triton["command"][2]
    assert triton["command"][2].startswith("python3 -m tasks triton-prepare ")
    assert "./tasks:/opt/social-tone/tasks:ro" in str(triton["volumes"]) or any(
        str(v).endswith("/opt/social-tone/tasks:ro") or (isinstance(v, dict) and v.get("target") == "/opt/social-tone/tasks")
        for v in triton["volumes"])
    for name in ("airflow-scheduler", "airflow-worker", "airflow-dag-processor"):
        assert gpu["services"][name]["environment"]["SOCIAL_TONE_GPU"] == "true"
        assert gpu["services"][name]["environment"]["SOCIAL_TONE_TRITON_BACKEND"] == "tensorrt_plan"
        assert cpu["services"][name]["environment"]["SOCIAL_TONE_GPU"] == "false"
        assert cpu["services"][name]["environment"]["SOCIAL_TONE_TRITON_EXECUTION_ENV"] == "/opt/venv"
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
            "postgres", "redis", "mlflow", "triton", "docker-proxy"} <= set(cpu["services"])


def test_celery_on_redis_and_postgres_for_airflow_and_mlflow(env_file):
    c = config(env_file, "docker-compose.yaml")
    env = c["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert c["services"]["airflow-worker"]["command"] == ["airflow", "celery", "worker"]
    assert c["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow:")
    # passwords travel in the environment, never on a command line (ps, docker inspect's Args)
    for name, svc in c["services"].items():
        assert "PASSWORD" not in " ".join(map(str, svc.get("command") or [])), name
    for name in ("postgres", "redis", "airflow-worker", "airflow-scheduler", "mlflow", "triton", "docker-proxy"):
        assert c["services"][name]["restart"] == "unless-stopped", name


def test_loopback_only_proxy_socket_healthchecks_volumes(env_file):
    c = config(env_file, "docker-compose.yaml")
    for name, svc in c["services"].items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
        mounts = [str(v.get("source") if isinstance(v, dict) else v) for v in svc.get("volumes", [])]
        if name != "docker-proxy":
            assert not any("docker.sock" in m for m in mounts), f"{name} must not mount the Docker socket"
        if name not in ("airflow-init",):
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert not svc.get("privileged"), name
    env = c["services"]["airflow-scheduler"]["environment"]
    assert env["SOCIAL_TONE_DOCKER_URL"] == "tcp://docker-proxy:2375"
    assert env["SOCIAL_TONE_DATA_ROOT"] == env["SOCIAL_TONE_HOST_DATA_ROOT"]
    assert {"pgdata", "redis-data", "airflow-logs"} <= set(c["volumes"])
    # one log volume for every Airflow container: the UI reads any worker's task logs
    for name in ("airflow-apiserver", "airflow-worker", "airflow-scheduler"):
        assert any(str(v.get("source") if isinstance(v, dict) else v).startswith("airflow-logs")
                   or (isinstance(v, dict) and v.get("source") == "airflow-logs") for v in c["services"][name]["volumes"])


def test_tasks_cannot_reach_the_socket_proxy_and_nothing_has_a_default_password(env_file):
    c = config(env_file, "docker-compose.yaml")
    nets = {name: set(svc.get("networks", {})) for name, svc in c["services"].items()}
    assert nets["docker-proxy"] == {"control"} and c["networks"]["control"]["internal"] is True
    # the workers alone start task containers: nothing else reaches the Docker API (the team test
    # checks it from inside the api-server, scheduler and dag-processor)
    assert {n for n, ns in nets.items() if "control" in ns} == {"docker-proxy", "airflow-worker"}
    env = c["services"]["airflow-scheduler"]["environment"]
    task_net = env["SOCIAL_TONE_NETWORK_MODE"]
    policy = c["services"]["docker-proxy"]["environment"]
    assert policy["POLICY_NETWORKS"] == f"none,{task_net}" and policy["POLICY_DATA_ROOT"] == env["SOCIAL_TONE_DATA_ROOT"]
    assert set(policy["POLICY_IMAGES"].split(",")) == {"social-tone/task", "social-tone/tensorrt"}
    assert c["networks"]["tasks"]["name"] == task_net  # task containers join `tasks`: MLflow and Triton only
    assert {n for n, ns in nets.items() if "tasks" in ns} == {"mlflow", "triton"}
    assert c["networks"]["tasks"]["internal"] is True  # ... and no route out (tests/team checks it in a container)
    # MLflow's Flask session key is its own, not one of Airflow's
    key = c["services"]["mlflow"]["environment"]["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert len(key) >= 32 and key not in {env[k] for k in env if "SECRET" in k or "KEY" in k}
    assert nets["postgres"] == nets["redis"] == {"backend"} and c["networks"]["backend"]["internal"] is True
    secrets = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
                   and not line.startswith("#"))
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
                "MLFLOW_TRACKING_PASSWORD", "SOCIAL_TONE_TRITON_ADMIN_SECRET"):
        assert env[key] == secrets[key].split()[0] and len(env[key]) >= 32, key
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].endswith("airflow-passwords.json")
    assert "basic-auth" in c["services"]["mlflow"]["command"]
    # the CPU Triton closes its model-repository API with the secret (`tasks serve`); the GPU one
    # with flags
    assert c["services"]["triton"]["environment"]["SOCIAL_TONE_TRITON_ADMIN_SECRET"] == \
        env["SOCIAL_TONE_TRITON_ADMIN_SECRET"]
    gpu = " ".join(config(env_file, "docker-compose.yaml", "docker-compose.gpu.yaml")["services"]["triton"]["command"])
    assert f"model-repository,shared-memory,trace,logging:social-tone-admin={env['SOCIAL_TONE_TRITON_ADMIN_SECRET']}" \
        in gpu and "--http-restricted-api" in gpu
    for svc, key in (("postgres", "POSTGRES_PASSWORD"), ("postgres", "MLFLOW_DB_PASSWORD"), ("redis", "REDIS_PASSWORD")):
        value = c["services"][svc]["environment"][key]
        assert value == secrets[key].split()[0] and len(value) >= 32, key


def test_env_example_documents_every_setting():
    text = (REPO / ".env.example").read_text()
    code = (REPO / "include" / "settings.py").read_text() + (REPO / "dags" / "warcov_daily_scoring.py").read_text()
    import re
    for var in set(re.findall(r'"(SOCIAL_TONE_[A-Z_]+|MLFLOW_TRACKING_URI)"', code)):
        assert f"{var}=" in text, f"{var} is not in .env.example"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the init as another user")
def test_init_as_non_root_keeps_secrets_0600_and_says_what_to_run():
    """Issue 26: run as an ordinary user, the init left the secret files 0644 in a 0711 folder."""
    import tempfile
    tmp_path = Path(tempfile.mkdtemp(prefix="compose-init-", dir="/tmp"))  # pytest's tmp is 0700 root's
    tmp_path.chmod(0o777)
    try:
        _init_as_nobody(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _init_as_nobody(tmp_path):
    env = tmp_path / ".env"
    env.write_text((REPO / ".env.example").read_text()
                   .replace("SOCIAL_TONE_DATA_DIR=/srv/social-tone/data", f"SOCIAL_TONE_DATA_DIR={tmp_path / 'data'}")
                   .replace("SOCIAL_TONE_SECRETS_DIR=/srv/social-tone/secrets",
                            f"SOCIAL_TONE_SECRETS_DIR={tmp_path / 'secrets'}"))
    os.chown(env, 65534, 65534)  # the user's own .env
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
                        str(REPO / "scripts" / "compose-init.sh"), str(env)], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 1 and "not root" in p.stderr and "chown 50000" in p.stderr
    secrets = sorted((tmp_path / "secrets").iterdir())
    assert secrets and all(f.stat().st_mode & 0o777 == 0o600 for f in secrets), [oct(f.stat().st_mode) for f in secrets]
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700


PY310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"


@pytest.mark.skipif(not PY310.exists(), reason="no Python 3.10 (the NGC Triton image's) under pyenv")
def test_the_gpu_triton_prepares_its_repository_on_every_start(env_file, tmp_path):
    """The GPU Triton's command, as compose renders it, run with a Python 3.10 that has no
    numpy (the NGC image's python3 may not) and a stand-in tritonserver: a version that never
    passed a canary is retired before the server starts, on a restart as on the first start."""
    import json
    from tasks.triton import repo as trepo
    gpu = config(env_file, "docker-compose.yaml", "docker-compose.gpu.yaml")
    script = gpu["services"]["triton"]["command"]
    data = Path(next(line.split("=", 1)[1] for line in env_file.read_text().splitlines()
                     if line.startswith("SOCIAL_TONE_DATA_DIR=")).split()[0])
    model = data / "triton" / "social_tone"
    for v in (1, 2):
        (model / str(v)).mkdir(parents=True, exist_ok=True)
    trepo.mark_good(data / "triton", "social_tone", 1)  # 2 was published, then Triton crashed
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(PY310)
    (bin_dir / "tritonserver").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    (bin_dir / "tritonserver").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    p = subprocess.run(script, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["retired"] == [2], (script, p.stdout, p.stderr)
    assert trepo.versions(model) == [1] and "--load-model=social_tone" in (tmp_path / "args").read_text()
