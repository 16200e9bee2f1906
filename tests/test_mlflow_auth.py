"""MLflow with basic auth (the compose server): anonymous and wrong-password clients are
refused; the tasks log with the credentials compose-init generated, from their environment."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from tasks import tracking
from tasks.triton.server import die_with_parent, free_port

REPO = Path(__file__).resolve().parents[1]


def get(url, auth=None):
    req = urllib.request.Request(url, headers={"Authorization": "Basic " + b64encode(auth.encode()).decode()}
                                 if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except urllib.error.URLError:
        return None  # not listening (yet)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The compose recipe on loopback: compose-init's ini, `mlflow server --app-name basic-auth`
    (with its user store on SQLite here; on Postgres in the started stack, tests/team)."""
    root = tmp_path_factory.mktemp("mlflow-auth")
    env_file, data = root / ".env", root / "data"
    (root / "example").write_text(f"SOCIAL_TONE_DATA_DIR={data}\nSOCIAL_TONE_SECRETS_DIR={root / 'secrets'}\n"
                                  "POSTGRES_PASSWORD=change-me\n"
                                  "MLFLOW_TRACKING_USERNAME=social-tone\nMLFLOW_TRACKING_PASSWORD=\n")
    (data / "mlflow").mkdir(parents=True)
    env_file.write_text((root / "example").read_text())
    p = subprocess.run(["bash", str(REPO / "scripts" / "compose-init.sh"), str(env_file)], capture_output=True,
                       text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    ini = root / "mlflow-auth.ini"
    ini.write_text("".join(line if not line.startswith("database_uri") else
                           f"database_uri = sqlite:///{data}/mlflow/basic_auth.db\n"
                           for line in (root / "secrets" / "mlflow-auth.ini").read_text().splitlines(True)))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", "--backend-store-uri",
                             f"sqlite:///{data}/mlflow/mlflow.db", "--artifacts-destination", str(data / "mlflow" / "a")],
                            env={**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini),
                                 "MLFLOW_FLASK_SERVER_SECRET_KEY": values["AIRFLOW__API__SECRET_KEY"]},
                            stdout=subprocess.DEVNULL, stderr=open(root / "mlflow.log", "w"), preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        if get(url + "/health") == 200 or proc.poll() is not None:
            break
        time.sleep(0.5)
    assert get(url + "/health") == 200, (root / "mlflow.log").read_text()[-3000:]
    yield url, values, env_file, data
    proc.terminate()
    proc.wait(timeout=30)


def test_compose_init_generates_every_secret_once(server):
    url, values, env_file, data = server
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    for key in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "REDIS_PASSWORD", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET",
                "AIRFLOW__API__SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD", "SOCIAL_TONE_TRITON_ADMIN_SECRET",
                "MLFLOW_TRACKING_PASSWORD"):
        assert len(values[key]) >= 32 and values[key] not in ("change-me", "admin"), key
    assert json.loads((env_file.parent / "secrets" / "airflow-passwords.json").read_text()) == {
        "admin": values["AIRFLOW_ADMIN_PASSWORD"]}
    before = env_file.read_text()
    subprocess.run(["bash", str(REPO / "scripts" / "compose-init.sh"), str(env_file)], check=True, capture_output=True,
                   cwd=REPO)
    assert env_file.read_text() == before, "a second run keeps the secrets"


def test_anonymous_and_wrong_password_clients_are_refused(server):
    url, values, _, _ = server
    api = url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert get(api) == 401
    assert get(api, "social-tone:wrong") == 401
    assert get(api, f"social-tone:{values['MLFLOW_TRACKING_PASSWORD']}") == 200


def test_tasks_log_with_the_credentials_from_their_environment(server, monkeypatch):
    url, values, _, _ = server
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI to os.environ: let monkeypatch put the
    # old value back, or later tests' subprocesses would talk to this (stopped) server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "social-tone")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", values["MLFLOW_TRACKING_PASSWORD"])
    with tracking.run(url, run_name="auth-check") as active:
        tracking.log_metrics(active, {"x": 1.0})
        run_id = active.info.run_id
    import mlflow
    assert mlflow.get_run(run_id).data.metrics["x"] == 1.0
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(Exception, match="401|Unauthorized|credentials"):
        with tracking.run(url, run_name="refused"):
            pass
