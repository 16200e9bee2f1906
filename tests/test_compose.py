"""docker-compose.yaml: valid, loopback-only, socket behind a proxy, healthchecks, named volumes."""
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")


def config(*files):
    args = ["docker-compose", "--env-file", str(REPO / ".env.example")]
    for f in files:
        args += ["-f", str(REPO / f)]
    p = subprocess.run(args + ["config"], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def test_compose_validates_with_and_without_the_cpu_override():
    base = config("docker-compose.yaml")
    cpu = config("docker-compose.yaml", "docker-compose.cpu.yaml")
    assert base["services"]["triton"]["image"].startswith("nvcr.io/nvidia/tritonserver:24.10")
    assert cpu["services"]["triton"]["image"] == "social-tone/triton-cpu:latest"
    # GPU default: the model is loaded at start, after triton-prepare retired unverified versions
    triton = base["services"]["triton"]
    assert "--load-model=social_tone" in triton["command"] and "--exit-on-error=false" in triton["command"]
    assert triton["depends_on"]["triton-prepare"]["condition"] == "service_completed_successfully"
    assert base["services"]["triton-prepare"]["command"][2:4] == ["tasks", "triton-prepare"]
    env = base["services"]["airflow-scheduler"]["environment"]
    assert env["SOCIAL_TONE_GPU"] == "true" and env["SOCIAL_TONE_TRITON_BACKEND"] in ("tensorrt_plan", "onnxruntime")
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "postgres",
            "mlflow", "triton", "docker-proxy"} <= set(base["services"])


def test_loopback_only_proxy_socket_healthchecks_volumes():
    c = config("docker-compose.yaml")
    for name, svc in c["services"].items():
        for port in svc.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)
        mounts = [str(v.get("source") if isinstance(v, dict) else v) for v in svc.get("volumes", [])]
        if name != "docker-proxy":
            assert not any("docker.sock" in m for m in mounts), f"{name} must not mount the Docker socket"
        if name not in ("airflow-init", "triton-prepare"):
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        assert not svc.get("privileged"), name
    env = c["services"]["airflow-scheduler"]["environment"]
    assert env["SOCIAL_TONE_DOCKER_URL"] == "tcp://docker-proxy:2375"
    assert env["SOCIAL_TONE_DATA_ROOT"] == env["SOCIAL_TONE_HOST_DATA_ROOT"]
    assert {"pgdata", "airflow-logs"} <= set(c["volumes"])


def test_env_example_documents_every_setting():
    text = (REPO / ".env.example").read_text()
    code = (REPO / "include" / "settings.py").read_text() + (REPO / "dags" / "warcov_daily_scoring.py").read_text()
    import re
    for var in set(re.findall(r'"(SOCIAL_TONE_[A-Z_]+|MLFLOW_TRACKING_URI)"', code)):
        assert f"{var}=" in text, f"{var} is not in .env.example"
