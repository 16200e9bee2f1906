"""Drop-to-serving latency of warcov_retrain for a full-size synthetic drop, split into the
tasks' own compute and orchestration overhead. Real Airflow (dag.test), real Docker
containers on the task image, a real tritonserver, MLflow in SQLite.

compute   = the sum of the `elapsed_s` every `python -m tasks` command reports about itself
            (from its entry point to its result: imports, reading, training, ...)
overhead  = wall time of the run - compute: container start and teardown, interpreter start,
            Airflow scheduling, the Python tasks (claim, route, archive), log streaming.

Run with the Airflow venv (needs the task image: docker/build-images.sh):
    SOCIAL_TONE_TASKS_PYTHON=.venv/bin/python $AIRFLOW_VENV/bin/python bench/drop_to_serving.py [--rows 70252]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tasks import env as task_env  # noqa: E402  (stdlib only)
from tasks.triton.server import free_port  # noqa: E402  (stdlib-only at import)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=70_252)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    tasks_py = task_env.get("SOCIAL_TONE_TASKS_PYTHON") or str(REPO / ".venv" / "bin" / "python")
    home = Path(tempfile.mkdtemp(prefix="bench-d2s-"))
    data = home / "data"
    for d in ("inbox", "triton", "mlflow"):
        (data / d).mkdir(parents=True)
    grpc = f"127.0.0.1:{free_port()}"
    prefix = subprocess.run([tasks_py, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                            check=True).stdout.strip()
    os.environ.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_CONN_FS_DEFAULT": '{"conn_type": "fs", "extra": {"path": "/"}}',
        "SOCIAL_TONE_DATA_ROOT": str(data), "SOCIAL_TONE_POKE_INTERVAL": "1", "SOCIAL_TONE_TRITON_GRPC": grpc,
        "SOCIAL_TONE_TRITON_EXECUTION_ENV": prefix, "MLFLOW_TRACKING_URI": f"sqlite:///{data}/mlflow/mlflow.db",
        "SOCIAL_TONE_TRITON_ADMIN_SECRET": secrets.token_urlsafe(32)})  # Triton and the reload task share it
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    triton = subprocess.Popen([tasks_py, "-m", "tasks", "serve", "--repo", data / "triton", "--workdir",
                               home / "triton-work", "--grpc-port", grpc.split(":")[1], "--http-port", str(free_port()),
                               "--metrics-port", str(free_port())], env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    json.loads(triton.stdout.readline())
    try:
        subprocess.run([tasks_py, "-m", "tasks", "synth", "--out", data / "inbox" / "full-001", "--rows",
                        str(args.rows)], env={**env, "MLFLOW_TRACKING_URI": "none"}, check=True, capture_output=True)
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        dag = DagBag(dag_folder=str(REPO / "dags")).dags["warcov_retrain"]
        t0 = time.monotonic()
        dr = dag.test()
        wall = time.monotonic() - t0
        tis = {ti.task_id: ti for ti in dr.get_task_instances()}
        compute = {}
        with create_session() as session:
            for x in session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dag.dag_id, key="return_value")):
                value = XComModel.deserialize_value(x)
                if isinstance(value, str) and value.startswith("{"):
                    value = json.loads(value)
                if isinstance(value, dict) and "elapsed_s" in value:
                    compute[x.task_id] = value["elapsed_s"]
        tasks = {t: {"state": str(ti.state), "seconds": round((ti.end_date - ti.start_date).total_seconds(), 1)
                     if ti.start_date and ti.end_date else None, "compute_s": compute.get(t)}
                 for t, ti in tis.items()}
        result = {"rows": args.rows, "state": str(dr.state), "wall_s": round(wall, 1),
                  "compute_s": round(sum(compute.values()), 1),
                  "overhead_s": round(wall - sum(compute.values()), 1), "tasks": tasks}
    finally:
        os.killpg(triton.pid, signal.SIGTERM)
        triton.wait(timeout=60)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["state"].endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main())
