"""The team stack (docker-compose.yaml) started for real: every image built here, Airflow on
CeleryExecutor with two workers, Postgres, Redis, MLflow on Postgres, the CPU Triton, the
Docker socket proxy. `make team-test` (scripts/team.sh up/down around it).

- a synthetic drop becomes a served, promoted model; Triton's answers match ONNX Runtime on
  the run's own ONNX graph; the run's task instances ran on both workers;
- the daily DAG scores and monitors two days;
- faults (TEAM_FAULTS=1, the default): a worker is killed in the middle of `train` and the task
  is retried on the other one, with the dead try's container removed; the scheduler restarts
  in the middle of a run; Postgres restarts between runs. Every drop ends in archive/, none in
  processing/.
Times (images, start to healthy, drop to served) go to test-artifacts/team-times.json.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = "st-teamtest"
PORTS = {"SOCIAL_TONE_AIRFLOW_PORT": 28080, "SOCIAL_TONE_MLFLOW_PORT": 25000, "SOCIAL_TONE_TRITON_HTTP_PORT": 28000,
         "SOCIAL_TONE_TRITON_GRPC_PORT": 28001, "SOCIAL_TONE_TRITON_METRICS_PORT": 28002}
ROWS = 6000
FAULTS = os.environ.get("TEAM_FAULTS", "1") == "1"
ARTIFACTS = REPO / "test-artifacts"
TIMES: dict[str, float] = {}
DAYS = [(dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=k)).isoformat() for k in (2, 1)]

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None or shutil.which("docker") is None,
                                reason="docker-compose and a Docker engine are needed")


def sh(*args, check=True, timeout=1800, env=None) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert p.returncode == 0, f"{args}: {p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    root.chmod(0o755)  # the services (uid 50000) traverse it to their data dir
    env_file = root / ".env"
    start = DAYS[0]
    settings = {"SOCIAL_TONE_DATA_DIR": root / "data", "SOCIAL_TONE_SECRETS_DIR": root / "secrets",
                "SOCIAL_TONE_TASKS_NETWORK": f"{PROJECT}_tasks", "SOCIAL_TONE_POKE_INTERVAL": 5,
                "SOCIAL_TONE_HEARTBEAT_TIMEOUT": 45, "SOCIAL_TONE_SCORING_START": start,
                "SOCIAL_TONE_TASK_MEMORY": "4g", **PORTS}
    lines = [ln for ln in (REPO / ".env.example").read_text().splitlines()
             if ln.split("=", 1)[0] not in settings]
    env_file.write_text("\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n")
    env = {**os.environ, "TEAM_ENV": str(env_file), "TEAM_PROJECT": PROJECT, "TEAM_WORKERS": "2"}
    # two past days of posts, there before the daily DAG starts (a past day without posts is
    # skipped at once); their runs wait for the first served model
    for day in DAYS:
        sh(sys.executable, "-m", "tasks", "synth", "--kind", "scoring", "--out", str(root / "data" / "scoring" / "incoming"),
           "--rows", "3000", "--days", "1", "--start", day)
    sh("chown", "-R", "50000:0", str(root / "data"))
    t0 = time.time()
    up = sh("scripts/team.sh", "up", check=False, timeout=3000, env=env)
    TIMES["team_up_s"] = round(time.time() - t0, 1)
    try:
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
        for line in up.stdout.splitlines():
            if "start to healthy" in line:  # "... images N s, start to healthy M s"
                TIMES["images_s"] = float(line.split("images ")[1].split(" s")[0])
                TIMES["start_to_healthy_s"] = float(line.split("start to healthy ")[1].split(" s")[0])
        yield Stack(root, env_file, env)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        logs = sh("docker-compose", "--env-file", str(env_file), "-p", PROJECT, "logs", "--no-color", "--tail", "300",
                  check=False, env=env)
        (ARTIFACTS / "team-stack.log").write_text(logs.stdout + logs.stderr)
        (ARTIFACTS / "team-times.json").write_text(json.dumps(TIMES, indent=1))
        down = sh("scripts/team.sh", "down", check=False, env={**env, "TEAM_PURGE": "1"})
        shutil.rmtree(root / "data", ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr


class Stack:
    def __init__(self, root: Path, env_file: Path, env: dict):
        self.root, self.env_file, self.env = root, env_file, env
        self.data = root / "data"
        secrets = dict(ln.split("=", 1) for ln in env_file.read_text().splitlines() if "=" in ln and ln[0] != "#")
        self.password = secrets["AIRFLOW_ADMIN_PASSWORD"].split()[0]
        self.base = f"http://127.0.0.1:{PORTS['SOCIAL_TONE_AIRFLOW_PORT']}"
        self.token = self.call("POST", "/auth/token", {"username": "admin", "password": self.password},
                               auth=False)["access_token"]
        self.drops = 0

    def call(self, method, path, body=None, auth=True):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.token}"} if auth else {})})
        for attempt in range(5):  # a Postgres restart may cost the API one answer
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return json.loads(r.read() or b"{}")
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(3)

    def compose(self, *args, check=True):
        return sh("docker-compose", "--env-file", str(self.env_file), "-p", PROJECT, *args, check=check,
                  env={k: v for k, v in self.env.items() if not k.startswith(("SOCIAL_TONE", "AIRFLOW", "MLFLOW"))})

    def container(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def runs(self, dag: str, state: str | None = None) -> list[dict]:
        q = f"?limit=100&order_by=-start_date{'&state=' + state if state else ''}"
        return self.call("GET", f"/api/v2/dags/{dag}/dagRuns{q}")["dag_runs"]

    def task_instances(self, dag: str, run_id: str) -> list[dict]:
        return self.call("GET", f"/api/v2/dags/{dag}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances")[
            "task_instances"]

    def drop(self) -> str:
        """A synthetic drop, written aside and renamed into the inbox (as its owner, uid 50000)."""
        self.drops += 1
        name = f"team-{self.drops:03d}"
        tmp = self.root / "staging" / name
        sh(sys.executable, "-m", "tasks", "synth", "--out", str(tmp), "--rows", str(ROWS),
           "--seed", str(40 + self.drops), "--id-start", str(self.drops * ROWS), "--world-seed", "42")
        sh("chown", "-R", "50000:0", str(tmp))
        since = dt.datetime.now(dt.timezone.utc)
        os.rename(tmp, self.data / "inbox" / name)
        return name, since

    def wait_run(self, drop: str, since: dt.datetime, timeout: float = 1500, during=None) -> dict:
        """The warcov_retrain run that took `drop` through to archive/: @continuous runs one at a
        time, one drop each, so it is the first run to end after `since` (the drop's time).
        `during(run)` is called while a run is running, once per poll, until it returns True."""
        t0, done_during = time.time(), during is None
        while time.time() - t0 < timeout:
            for run in self.runs("warcov_retrain"):
                ended = run.get("end_date") and dt.datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
                if ended and ended > since and run["state"] == "failed":
                    pytest.fail(f"run {run['dag_run_id']} failed: {self.failed_tasks(run)}")
                if ended and ended > since and run["state"] == "success":
                    assert (self.data / "archive" / drop).exists(), (run, list((self.data / "archive").iterdir()))
                    return run
                if not done_during and run["state"] == "running":
                    done_during = bool(during(run))
            time.sleep(5)
        pytest.fail(f"{drop} was not served in {timeout} s; runs: {self.runs('warcov_retrain')[:3]}")

    def failed_tasks(self, run, dag: str = "warcov_retrain") -> list:
        return [(ti["task_id"], ti["state"], ti.get("hostname")) for ti in
                self.task_instances(dag, run["dag_run_id"]) if ti["state"] not in ("success", "skipped")]

    def nothing_stuck(self):
        assert not any((self.data / "processing").glob("*")), list((self.data / "processing").iterdir())
        assert not any((self.data / "inbox").glob("*")), list((self.data / "inbox").iterdir())


def test_a_drop_becomes_a_served_model_that_matches_onnx_runtime_and_uses_both_workers(stack):
    t0 = time.time()
    run = stack.wait_run(*stack.drop())
    TIMES["drop_to_served_s"] = round(time.time() - t0, 1)
    stack.nothing_stuck()
    champion = json.loads((stack.data / "state" / "champion.json").read_text())
    model_dir = Path(champion["run"])
    # Triton (the CPU container, C++ onnxruntime backend) answers what ONNX Runtime computes on the graph
    import onnxruntime as ort

    from tasks.rundir import RunDir
    from tasks.triton.client import TritonClient
    rd = RunDir(model_dir)
    img, txt, _, _ = rd.check_rows(64)
    sess = ort.InferenceSession(str(rd.onnx), providers=["CPUExecutionProvider"])
    want = sess.run(None, dict(zip([i.name for i in sess.get_inputs()], (img, txt))))[0]
    client = TritonClient(f"127.0.0.1:{PORTS['SOCIAL_TONE_TRITON_GRPC_PORT']}")
    got = client.infer(img, txt)
    assert str(got.version) == str(champion["triton_version"])
    # the production backend, not the Python stub (that takes SOCIAL_TONE_TRITON_BACKEND=python)
    assert client.config()["backend"] == "onnxruntime"
    np.testing.assert_allclose(got.logits, want, rtol=1e-4, atol=1e-4)
    # Celery spread the run's task instances over both workers (hostname = the worker container)
    tis = stack.task_instances("warcov_retrain", run["dag_run_id"])
    hosts = {ti["hostname"] for ti in tis if ti.get("hostname")}
    workers = {sh("docker", "inspect", "-f", "{{.Config.Hostname}}", c).stdout.strip()
               for c in stack.container("airflow-worker")}
    assert len(workers) == 2 and hosts <= workers and len(hosts) == 2, (hosts, workers)
    # the task logs of either worker read through the API server (one shared log volume)
    ti = next(t for t in tis if t["task_id"] == "train")
    log = stack.call("GET", f"/api/v2/dags/warcov_retrain/dagRuns/{urllib.parse.quote(run['dag_run_id'])}"
                            f"/taskInstances/train/logs/{ti['try_number']}")
    assert "docker container" in json.dumps(log), str(log)[:2000]


def test_only_the_workers_reach_the_docker_api(stack):
    """The api-server, scheduler and dag-processor have no route to the policy proxy (not on its
    network: the name does not even resolve); a worker has, and the proxy refuses it anything
    but task containers (tests/airflow/test_docker_policy.py has the hostile requests)."""
    probe = ("import socket, sys\ntry:\n socket.create_connection(('docker-proxy', 2375), timeout=5).close()\n"
             "except OSError as e:\n print('unreachable', type(e).__name__); sys.exit(1)\nprint('reachable')")
    # by its address too: the engine isolates its networks (iptables), so the connection fails (the
    # proxy would also refuse a client from outside its own networks, tests/airflow/test_docker_policy.py)
    proxy_ip = sh("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                  stack.container("docker-proxy")[0]).stdout.strip()
    by_ip = ("import urllib.request, urllib.error\ntry:\n print(urllib.request.urlopen("
             f"'http://{proxy_ip}:2375/_ping', timeout=5).status)\n"
             "except urllib.error.HTTPError as e:\n print(e.code, e.read().decode())\n"
             "except OSError as e:\n print('unreachable', e)")
    for service in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        p = sh("docker", "exec", stack.container(service)[0], "python3", "-c", probe, check=False)
        assert p.returncode == 1 and "unreachable" in p.stdout, (service, p.stdout, p.stderr)
        out = sh("docker", "exec", stack.container(service)[0], "python3", "-c", by_ip).stdout
        assert out.startswith("unreachable"), (service, out)
    worker = stack.container("airflow-worker")[0]
    assert sh("docker", "exec", worker, "python3", "-c", probe).stdout.strip() == "reachable"
    refused = ("import json, urllib.request, urllib.error\ntry:\n urllib.request.urlopen(urllib.request.Request("
               "'http://docker-proxy:2375/containers/create', data=json.dumps({'Image': 'social-tone/task:latest', "
               "'HostConfig': {'Privileged': True}}).encode(), headers={'Content-Type': 'application/json'}))\n"
               "except urllib.error.HTTPError as e:\n print(e.code, e.read().decode())")
    out = sh("docker", "exec", worker, "python3", "-c", refused).stdout
    assert out.startswith("403") and "social-tone docker policy" in out, out


@pytest.fixture
def outside_host():
    """An address beyond the machine's Docker bridges, without leaving the machine: a network
    namespace behind a veth pair, listening on TCP. A container reaches it only through its
    default route and the engine's forwarding, as it would reach the internet."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("building a network namespace needs root and iproute2")
    ns, veth, net = f"st-out-{os.getpid()}", f"stout{os.getpid() % 100000}", "10.253.77"
    def ip(*a, check=True):
        return sh("ip", *a, check=check)
    ip("netns", "add", ns)
    try:
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("addr", "add", f"{net}.1/30", "dev", veth)
        ip("link", "set", veth, "up")
        for a in (("addr", "add", f"{net}.2/30", "dev", "eth0"), ("link", "set", "eth0", "up"),
                  ("link", "set", "lo", "up"), ("route", "add", "default", "via", f"{net}.1")):
            ip("netns", "exec", ns, "ip", *a)
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c",
             "import socket\ns = socket.create_server(('0.0.0.0', 8765))\n"
             "while True:\n c, _ = s.accept(); c.sendall(b'outside'); c.close()"])
        time.sleep(1)
        try:
            yield f"{net}.2", 8765
        finally:
            server.kill()
            server.wait()
    finally:
        ip("link", "del", veth, check=False)
        ip("netns", "del", ns, check=False)


def test_task_containers_are_on_an_internal_network_with_no_way_out(stack, outside_host):
    """The network the factory puts task containers on is internal; MLflow and Triton answer
    there by name, and an address outside the machine's bridges does not, while the same
    address answers a container on the stack's non-internal network (so the probe can fail).
    Docker before 25.0 still gives containers on an internal network a default route (moby
    #46603 removed it); packets sent along it are dropped by the engine's isolation rules,
    which is what this checks. On an engine >= 25 there must be no default route at all."""
    net = f"{PROJECT}_tasks"
    assert sh("docker", "network", "inspect", "-f", "{{.Internal}}", net).stdout.strip() == "true"
    host, port = outside_host
    probe = ("import json, socket, urllib.request\n"
             "def outside():\n try:\n  return socket.create_connection((%r, %d), timeout=5).recv(16).decode()\n"
             " except OSError as e:\n  return type(e).__name__\n"
             "routes = [l.split() for l in open('/proc/net/route').read().splitlines()[1:]]\n"
             "out = {'outside': outside(), 'default_route': any(r[1] == '00000000' for r in routes)}\n"
             "if %r:\n out['triton'] = urllib.request.urlopen('http://triton:8000/v2/health/live', timeout=10).status\n"
             " out['mlflow'] = urllib.request.urlopen('http://mlflow:5000/health', timeout=10).status\n"
             "print(json.dumps(out))")
    def run(network, services):
        p = sh("docker", "run", "--rm", "--network", network, "social-tone/task:latest", "python3", "-c",
               probe % (host, port, services))
        return json.loads(p.stdout.splitlines()[-1])
    inside = run(net, True)
    assert inside["triton"] == 200 and inside["mlflow"] == 200, inside
    assert inside["outside"] != "outside", ("a container on the tasks network reached an address beyond the bridges: "
                                            "does the engine run with --iptables=false?", inside)
    major = int(sh("docker", "version", "-f", "{{.Server.Version}}").stdout.split(".")[0])
    if major >= 25:
        assert not inside["default_route"], inside
    assert run(f"{PROJECT}_edge", False)["outside"] == "outside"


def test_the_daily_dag_scores_and_monitors_two_days(stack):
    t0 = time.time()
    while time.time() - t0 < 900:
        if all((stack.data / "monitoring" / day / "report.json").exists() for day in DAYS):
            break
        failed = stack.runs("warcov_daily_scoring", "failed")
        assert not failed, [(r["dag_run_id"], stack.failed_tasks(r, "warcov_daily_scoring")) for r in failed]
        time.sleep(5)
    for day in DAYS:
        report = json.loads((stack.data / "monitoring" / day / "report.json").read_text())
        assert report, day
        assert any((stack.data / "scoring" / "predictions").rglob(f"*{day}*")), day


@pytest.mark.skipif(not FAULTS, reason="TEAM_FAULTS=0")
def test_a_worker_killed_in_the_middle_of_train_is_replaced_by_the_other(stack):
    killed = {}

    def kill_trains_worker(run):
        ti = next((t for t in stack.task_instances("warcov_retrain", run["dag_run_id"])
                   if t["task_id"] == "train"), None)
        if not ti or ti["state"] != "running" or not ti.get("hostname"):
            return False
        running = [c for c in sh("docker", "ps", "-q", "--filter", "label=social-tone.task-instance").stdout.split()]
        if not running:
            return False  # the train container has not started yet
        time.sleep(5)  # in the middle of training
        for c in stack.container("airflow-worker"):
            if sh("docker", "inspect", "-f", "{{.Config.Hostname}}", c).stdout.strip() == ti["hostname"]:
                sh("docker", "kill", c)
                killed.update(host=ti["hostname"], container=c, run=run["dag_run_id"])
                return True
        return False

    run = stack.wait_run(*stack.drop(), during=kill_trains_worker)
    assert killed, "train was never seen running"
    train = next(t for t in stack.task_instances("warcov_retrain", run["dag_run_id"]) if t["task_id"] == "train")
    assert train["try_number"] >= 2 and train["hostname"] != killed["host"], (train, killed)
    stack.nothing_stuck()
    champion = json.loads((stack.data / "state" / "champion.json").read_text())
    assert Path(champion["run"]).exists()
    # the dead try's container was removed by the retry (and the retry's own after it ended)
    key = f"social-tone.task-instance=warcov_retrain/train/{killed['run']}"
    assert sh("docker", "ps", "-aq", "--filter", f"label={key}").stdout.split() == []
    sh("docker", "start", killed["container"])  # back to two workers for the next tests


@pytest.mark.skipif(not FAULTS, reason="TEAM_FAULTS=0")
def test_a_scheduler_restart_in_the_middle_of_a_run_does_not_lose_it(stack):
    restarted = []

    def restart_scheduler(run):
        tis = {t["task_id"]: t["state"] for t in stack.task_instances("warcov_retrain", run["dag_run_id"])}
        if tis.get("ingest") != "success":
            return False
        for c in stack.container("airflow-scheduler"):
            sh("docker", "restart", c)
        restarted.append(run["dag_run_id"])
        return True

    stack.wait_run(*stack.drop(), during=restart_scheduler)
    assert restarted
    stack.nothing_stuck()


@pytest.mark.skipif(not FAULTS, reason="TEAM_FAULTS=0")
def test_after_a_postgres_restart_the_next_drop_still_goes_through(stack):
    for c in stack.container("postgres"):
        sh("docker", "restart", c)
    run = stack.wait_run(*stack.drop())
    assert run["state"] == "success"
    stack.nothing_stuck()
