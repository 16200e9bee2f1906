"""`make demo` from the outside: the embedded stack comes up, serves a model, the Airflow UI
(headless Debian Chromium) shows both DAGs and the finished run after a login, and
`make down` leaves no process behind. The screenshot is kept in test-artifacts/."""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

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
        down = subprocess.run(["make", "down"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        left = subprocess.run(["pgrep", "-af", str(demo_dir)], capture_output=True, text=True).stdout
        assert down.returncode == 0 and left == "", f"make down left: {left}\n{down.stdout}{down.stderr}"


def test_demo_serves_and_prints_where_to_look(demo):
    out, demo_dir = demo
    assert f"Airflow UI   http://127.0.0.1:{PORT}" in out and "login: admin / " in out
    assert "MLflow UI    http://127.0.0.1:15000" in out and "gRPC 127.0.0.1:18001" in out
    assert "(model version 1):" in out and " p=0." in out  # a prediction with topic names and probabilities
    assert (demo_dir / "data" / "archive" / "demo-001").exists()


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
    finally:
        driver.save_screenshot(str(ARTIFACTS / "airflow-ui-last.png"))
        driver.quit()
