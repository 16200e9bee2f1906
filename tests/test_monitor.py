"""`tasks monitor` on 30 synthetic days: planted topic spikes are found, planted drift is
flagged, and the trends dashboard shows them in a real (headless Chromium) browser."""
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import monitor, synth
from tasks.export_onnx import export_onnx
from tasks.score import OnnxScorer, score
from tasks.train import TrainConfig, train

START = dt.date(2026, 3, 1)
SPIKES = {9: 5, 16: 12, 23: 31}   # day index -> topic; an event = 12% of the day's posts
DRIFT_DAY = 27                    # text embeddings shifted by +0.3 on every coordinate
ROWS = 3000


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    synth.write_labeled(root / "train", "train", rows=70_252, seed=1, world_seed=42)
    train([root / "train"], root / "run", TrainConfig(), tracking_uri="none")
    export_onnx(root / "run", tracking_uri="none")
    scorer = OnnxScorer(root / "run")
    reports = {}
    for i in range(30):
        day = START + dt.timedelta(days=i)
        drop = root / "incoming" / day.isoformat()
        synth.write_scoring_day(drop, day, ROWS, seed=7, boost={SPIKES[i]: 0.12} if i in SPIKES else None,
                                txt_shift=0.3 if i == DRIFT_DAY else 0.0)
        score(drop, root / "pred" / f"{day}.parquet", scorer, scorer.names)
        reports[i] = monitor.monitor(root / "pred" / f"{day}.parquet", day, root / "mon", drop=drop,
                                     dashboard=root / "mon" / "dashboard.html" if i == 29 else None)
    return root, reports


def test_planted_spikes_are_found_with_at_most_one_false_alarm(days):
    _, reports = days
    found = {(i, s) for i, r in reports.items() for s in r["spikes"]}
    planted = {(i, synth.TOPIC_NAMES[k]) for i, k in SPIKES.items()}
    assert planted <= found
    assert len(found - planted) <= 1, found - planted
    assert all(reports[i]["status"] == "warming_up" and not reports[i]["spikes"] for i in range(7))
    assert reports[29]["history_days"] == 28


def test_planted_drift_is_flagged_only_that_day(days):
    _, reports = days
    flagged = {i for i, r in reports.items() if r["drift"].get("txt", {}).get("flagged")}
    assert flagged == {DRIFT_DAY}
    assert not any(r["drift"].get("img", {}).get("flagged") for r in reports.values())
    assert reports[DRIFT_DAY]["drift"]["txt"]["mean_shift"] > 5 * reports[DRIFT_DAY]["drift"]["txt"]["noise"]


def test_outputs_and_an_idempotent_rerun_with_the_alert_hook(days, tmp_path, monkeypatch):
    root, reports = days
    day = START + dt.timedelta(days=16)
    out = root / "mon" / day.isoformat()
    assert sorted(p.name for p in out.iterdir()) == ["input_stats.npz", "report.html", "report.json", "volumes.png"]
    assert (out / "volumes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "refugees" in (out / "report.html").read_text()  # topic 12
    before = json.loads((out / "report.json").read_text())
    # re-run the day through the CLI with the alert command hook: same report, replaced atomically
    sink = tmp_path / "alert.json"
    monkeypatch.setenv("SOCIAL_TONE_ALERT_COMMAND", f"cat > {sink}")
    p = subprocess.run([sys.executable, "-m", "tasks", "monitor", "--predictions", str(root / "pred" / f"{day}.parquet"),
                        "--day", day.isoformat(), "--root", str(root / "mon"), "--drop",
                        str(root / "incoming" / day.isoformat())], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "WARNING" in p.stderr and "ALERT 2026-03-17 spike: refugees" in p.stderr
    assert json.loads(sink.read_text())["spikes"] == ["refugees"]
    after = json.loads((out / "report.json").read_text())
    assert after == before
    assert not [p for p in (root / "mon").iterdir() if p.name.startswith(".")], "no temp dirs left"


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium + chromium-driver not installed")
def test_dashboard_shows_the_planted_spikes_and_drift_in_a_browser(days):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    root, reports = days
    page = root / "mon" / "dashboard.html"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--window-size=1400,1800"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        driver.get(page.as_uri())
        # Plotly drew its three charts (SVG), offline: its JavaScript is inlined in the page
        WebDriverWait(driver, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")) >= 3)
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in driver.find_elements(By.CSS_SELECTOR, "table.spikes tr")[1:]]
        shown = {(r[0], r[1]) for r in rows}
        planted = {((START + dt.timedelta(days=i)).isoformat(), synth.TOPIC_NAMES[k]) for i, k in SPIKES.items()}
        assert planted <= shown, (planted, rows)
        # every spiked topic is drawn in the volumes chart from the start (others wait in the legend)
        drawn = driver.execute_script("return document.querySelector('.js-plotly-plot').data"
                                      ".filter(t => t.visible !== \"legendonly\").map(t => t.name)")
        assert {synth.TOPIC_NAMES[k] for k in SPIKES.values()} | {"spikes"} <= set(drawn), drawn
        drift = driver.find_element(By.CSS_SELECTOR, "table.drift").text
        assert (START + dt.timedelta(days=DRIFT_DAY)).isoformat() in drift and "Text embeddings: DRIFT" in drift
        days_table = driver.find_element(By.CSS_SELECTOR, "table.days").text
        assert "2026-03-30" in days_table and "2026-03-01" in days_table
        driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        # one click from the dashboard to a day's report, whose drift reads as words
        driver.find_element(By.LINK_TEXT, (START + dt.timedelta(days=DRIFT_DAY)).isoformat()).click()
        WebDriverWait(driver, 10).until(lambda d: "Topic monitoring" in d.page_source)
        assert "Text embeddings: DRIFT, mean shift" in driver.page_source
    finally:
        driver.quit()
