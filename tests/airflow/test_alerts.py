"""Alerts arrive under Airflow: the daily DAG's monitor step as the one DockerOperator factory
builds it, run in a real container, POSTs a planted spike to a webhook on loopback (the
settings reach the container)."""
import datetime as dt
import http.server
import json
import os
import time
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO, TASKS_PY

pytestmark = pytest.mark.skipif(subprocess.run(["docker", "image", "inspect", os.environ.get(
    "SOCIAL_TONE_TASK_IMAGE", "social-tone/task:latest")], capture_output=True).returncode != 0,
    reason="task image not built (docker/build-images.sh)")

START = dt.date(2026, 5, 1)
# 8 days of scored posts, written directly (no model needed): topic_2 jumps on the last day
WRITE_DAYS = """
import sys, datetime as dt, numpy as np, pyarrow as pa, pyarrow.parquet as pq
out, start = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
rng = np.random.default_rng(0)
base = np.array([0.10, 0.05, 0.04, 0.08, 0.06])
for i in range(8):
    rate = base.copy()
    if i == 7:
        rate[2] = 0.30
    p = np.clip(rng.random((3000, 5)) * 0.1 + (rng.random((3000, 5)) < rate) * 0.8, 0, 1).astype(np.float32)
    names = [f"topic_{k}" for k in range(5)]
    cols = {"post_id": pa.array([f"{i}-{r}" for r in range(3000)]), "model_version": pa.array(["1"] * 3000)}
    cols.update({f"p_{n}": pa.array(p[:, k]) for k, n in enumerate(names)})
    cols["topics"] = pa.array([[n for k, n in enumerate(names) if row[k] >= 0.5] for row in p], pa.list_(pa.string()))
    pq.write_table(pa.table(cols), f"{out}/{start + dt.timedelta(days=i)}.parquet")
"""


@pytest.fixture
def webhook():
    """A webhook receiver on loopback: (its URL, the JSON bodies it received)."""
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_a_spike_reaches_the_webhook_from_a_docker_task(airflow_db, webhook):
    data = Path(os.environ["SOCIAL_TONE_DATA_ROOT"])
    preds, mon = data / "alert-check" / "predictions", data / "alert-check" / "monitoring"
    preds.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": "none"}
    subprocess.run([TASKS_PY, "-c", WRITE_DAYS, str(preds), START.isoformat()], check=True, env=env)
    for i in range(7):  # the history, on the host: no alerts while warming up
        day = START + dt.timedelta(days=i)
        subprocess.run([TASKS_PY, "-m", "tasks", "monitor", "--predictions", str(preds / f"{day}.parquet"),
                        "--day", str(day), "--root", str(mon)], check=True, env=env, capture_output=True)

    url, received = webhook
    code = f"""
import json, os
os.environ["SOCIAL_TONE_ALERT_WEBHOOK"] = {url!r}
os.environ["MLFLOW_TRACKING_URI"] = "none"
from include import docker_task, settings
S = settings.load()
day = "{START + dt.timedelta(days=7)}"
op = docker_task.task(S, "monitor", ["monitor", "--predictions", "{preds}/" + day + ".parquet", "--day", day,
                                     "--root", "{mon}"], writes=[S.data_root / "alert-check" / "monitoring"],
                      alerts=True)
assert "SOCIAL_TONE_ALERT_WEBHOOK" not in str(op.environment)  # private: never rendered in the UI
print("RESULT", op.execute({{}}))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert p.returncode == 0 and "RESULT" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    assert [r["spikes"] for r in received] == [["topic_2"]], received
    assert received[0]["day"] == str(START + dt.timedelta(days=7))


def test_a_failed_run_is_posted_to_the_same_webhook_and_retrain_pauses_after_failures(airflow_db, webhook,
                                                                                     monkeypatch):
    """Every DAG's failure callback (include/notify.py) POSTs the DAG, the run and its failed
    tasks to SOCIAL_TONE_ALERT_WEBHOOK, here for a real failed run; warcov_retrain is
    declared to pause itself after 3 failed runs in a row."""
    url, received = webhook
    monkeypatch.setenv("SOCIAL_TONE_ALERT_WEBHOOK", url)
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=str(REPO / "dags"))
    for dag_id in ("warcov_retrain", "warcov_retrain_now", "warcov_daily_scoring"):
        assert bag.dags[dag_id].on_failure_callback, dag_id
    assert bag.dags["warcov_retrain"].max_consecutive_failed_dag_runs == 3
    # a real failed run: retrain-now before any data was ingested fails in `prepare`
    assert not (Path(os.environ["SOCIAL_TONE_DATA_ROOT"]) / "dataset" / "drops").exists()
    dag = bag.dags["warcov_retrain_now"]
    dr = dag.test(run_conf={"epochs": 1})
    assert dr.state == "failed"
    # dag.test runs the DAG's failure callback itself, as the dag-processor does
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(received) == 1, received
    assert received[0]["event"] == "run_failed" and received[0]["dag_id"] == "warcov_retrain_now"
    assert received[0]["run_id"] == dr.run_id and received[0]["failed_tasks"] == ["prepare"], received
