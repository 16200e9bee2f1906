"""`make demo` from the outside: the embedded stack comes up, serves a model, scores three
days with no failed try; the Airflow UI (headless Debian Chromium) shows the DAGs, the finished
run and, one click away, the topic-trends dashboard with the demo's days; today's daily run
waiting for its posts holds back no other day; `make down` leaves no process behind and says
what stays on disk. Screenshots are kept in test-artifacts/."""
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium + chromium-driver not installed")
PORT = 18080
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    demo_dir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SOCIAL_TONE", "MLFLOW"))}
    env.update(DEMO_DIR=str(demo_dir), DEMO_ROWS="5000", DEMO_AIRFLOW_PORT=str(PORT), DEMO_MLFLOW_PORT="15000",
               DEMO_TRITON_HTTP="18000", DEMO_TRITON_GRPC="18001", DEMO_TRITON_METRICS="18002")
    p = subprocess.run(["make", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    try:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        yield p.stdout, demo_dir
    finally:
        engine_before = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout
        down = subprocess.run(["make", "down"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        left = subprocess.run(["pgrep", "-af", str(demo_dir)], capture_output=True, text=True).stdout
        assert down.returncode == 0 and left == "", f"make down left: {left}\n{down.stdout}{down.stderr}"
        assert f"left on disk: {demo_dir}" in down.stdout and "make clean removes them" in down.stdout, down.stdout
        # the engine ran before the demo here (CI starts it for the whole suite): make down leaves
        # it alone, and says so; one the demo started itself it stops (scripts/down.sh)
        assert not (demo_dir / "run" / "dockerd.started").exists()
        assert subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout == engine_before
        assert "dockerd left running: it was running before the demo" in down.stdout


class Api:
    """The demo's Airflow REST API as its admin (POST /auth/token, then Bearer)."""

    def __init__(self, out):
        password = out.split("login: admin / ")[1].split()[0]
        self.base = f"http://127.0.0.1:{PORT}"
        token = self.call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        self.token = token["access_token"]

    def call(self, method, path, body=None, auth=True):
        req = urllib.request.Request(self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.token}"} if auth else {})})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def runs(self, dag_id):
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def demo_days(out):
    """The three past days the demo scored (it prints them), and the day it ran on: read from its
    output, not the clock, so a run across midnight checks the same days."""
    days = re.search(r"score and monitor (\S+) (\S+) (\S+)", out).groups()
    return list(days), (dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat()


def test_demo_serves_and_prints_where_to_look(demo):
    out, demo_dir = demo
    assert f"Airflow UI     http://127.0.0.1:{PORT}" in out and "login: admin / " in out
    assert "MLflow UI      http://127.0.0.1:15000" in out and "gRPC 127.0.0.1:18001" in out
    assert f"Topic trends   http://127.0.0.1:{PORT}/social-tone/" in out
    assert " p=0." in out and "predicted" in out  # topic names, probabilities
    # served by Triton's C++ onnxruntime backend: the Python stub only with the fallback setting
    assert "(model version 1, Triton backend onnxruntime):" in out
    assert (demo_dir / "data" / "archive" / "demo-001").exists()


def test_the_demo_ends_green_with_no_failed_try(demo):
    out, demo_dir = demo
    api = Api(out)
    days, _ = demo_days(out)
    daily = {r["logical_date"][:10]: r["state"] for r in api.runs("warcov_daily_scoring")}
    assert all(daily.get(d) == "success" for d in days), daily
    for d in days:  # scored and monitored, not skipped
        report = json.loads((demo_dir / "data" / "monitoring" / d / "report.json").read_text())
        assert report["rows"] == 5000 and report["model_versions"] == ["1"], report["day"]
    assert [r["state"] for r in api.runs("warcov_retrain")].count("success") >= 1
    tis = api.call("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?limit=1000")["task_instances"]
    failed = [(t["dag_id"], t["task_id"], t["state"], t["try_number"]) for t in tis
              if t["state"] in ("failed", "upstream_failed", "up_for_retry") or (t["try_number"] or 0) > 1]
    assert len(tis) > 20 and failed == [], failed


def test_the_dashboard_is_behind_airflow_login(demo):
    for path in ("/social-tone/", "/social-tone/dashboard.html", "/social-tone/2026-01-01/report.html"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=30)
        assert e.value.code in (401, 403), path


def test_todays_run_waiting_for_its_posts_holds_back_no_other_day(demo):
    """Today's daily run waits (deferred) for today's posts; clearing an earlier day re-runs
    that day to success meanwhile, instead of queueing behind today."""
    out, _ = demo
    api = Api(out)
    days, today = demo_days(out)
    runs = {r["logical_date"][:10]: r for r in api.runs("warcov_daily_scoring")}
    assert runs[today]["state"] in ("running", "queued"), runs[today]
    first = runs[days[0]]
    api.call("POST", "/api/v2/dags/warcov_daily_scoring/clearTaskInstances",
             {"dry_run": False, "dag_run_id": first["dag_run_id"], "only_failed": False, "reset_dag_runs": True})
    for _ in range(300):
        state = api.call("GET", f"/api/v2/dags/warcov_daily_scoring/dagRuns/{first['dag_run_id']}")["state"]
        if state in ("success", "failed"):
            break
        time.sleep(2)
    assert state == "success"
    assert api.call("GET", f"/api/v2/dags/warcov_daily_scoring/dagRuns/{runs[today]['dag_run_id']}")["state"] in (
        "running", "queued"), "today is still waiting for its posts"


def test_every_socket_the_demo_listens_on_is_loopback(demo):
    _, demo_dir = demo
    pids = set()
    for name in ("airflow", "triton", "mlflow"):
        sid = (demo_dir / "run" / f"{name}.pid").read_text().strip()
        pids |= set(subprocess.run(["pgrep", "-s", sid], capture_output=True, text=True).stdout.split())
    pids |= set(subprocess.run(["pgrep", "-f", f"model-repository={demo_dir}"], capture_output=True,
                               text=True).stdout.split())
    listening = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        owners = set(re.findall(r"pid=(\d+)", line))
        if owners & pids:
            listening.append(line.split()[3])
    assert len(listening) >= 5, listening  # Airflow api-server, MLflow, Triton http, grpc, metrics
    assert all(a.startswith(("127.0.0.1:", "[::1]:", "[::ffff:127.0.0.1]:")) for a in listening), listening


def test_airflow_ui_login_shows_both_dags_and_the_finished_run(demo):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    out, _ = demo
    password = out.split("login: admin / ")[1].split()[0]
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(f"http://127.0.0.1:{PORT}/")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name=username]"))).send_keys("admin")
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # leave the login page only once it has redirected: an earlier get() races the login's
        # own redirect, which then lands on the home page instead of /dags
        wait.until(lambda d: "login" not in d.current_url.lower() and "Welcome" in d.page_source)
        driver.get(f"http://127.0.0.1:{PORT}/dags")
        wait.until(lambda d: "warcov_retrain" in d.page_source and "warcov_daily_scoring" in d.page_source)
        driver.save_screenshot(str(ARTIFACTS / "airflow-ui-dags.png"))
        driver.get(f"http://127.0.0.1:{PORT}/dags/warcov_retrain/runs")
        wait.until(lambda d: "success" in d.page_source.lower())
        time.sleep(1)
        driver.save_screenshot(str(ARTIFACTS / "airflow-ui-runs.png"))
        # one click from the UI's navigation to the topic-trends dashboard, which shows the demo's days
        driver.get(f"http://127.0.0.1:{PORT}/")
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='Topic trends']"))
        driver.find_element(By.XPATH, "//*[normalize-space(text())='Topic trends']").click()
        frame = wait.until(ec.presence_of_element_located((By.TAG_NAME, "iframe")))
        driver.switch_to.frame(frame)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= 3)
        days_table = driver.find_element(By.CSS_SELECTOR, "table.days").text
        assert all(d in days_table for d in demo_days(out)[0]), days_table
        driver.switch_to.default_content()
        time.sleep(1)
        driver.save_screenshot(str(ARTIFACTS / "airflow-ui-topic-trends.png"))
    finally:
        driver.save_screenshot(str(ARTIFACTS / "airflow-ui-last.png"))
        driver.quit()
