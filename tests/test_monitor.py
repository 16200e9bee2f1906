"""`tasks monitor` on 30 synthetic days: planted topic spikes are found, planted drift is flagged."""
import datetime as dt
import json
import subprocess
import sys

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
    export_onnx(root / "run", [root / "train"], root / "run" / "model.onnx", tracking_uri="none")
    scorer = OnnxScorer(root / "run")
    reports = {}
    for i in range(30):
        day = START + dt.timedelta(days=i)
        drop = root / "incoming" / day.isoformat()
        synth.write_scoring_day(drop, day, ROWS, seed=7, boost={SPIKES[i]: 0.12} if i in SPIKES else None,
                                txt_shift=0.3 if i == DRIFT_DAY else 0.0)
        score(drop, root / "pred" / f"{day}.parquet", scorer, scorer.names)
        reports[i] = monitor.monitor(root / "pred" / f"{day}.parquet", day, root / "mon", drop=drop)
    return root, reports


def test_planted_spikes_are_found_with_at_most_one_false_alarm(days):
    _, reports = days
    found = {(i, s) for i, r in reports.items() for s in r["spikes"]}
    planted = {(i, f"topic_{k:02d}") for i, k in SPIKES.items()}
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
    assert "topic_12" in (out / "report.html").read_text()
    before = json.loads((out / "report.json").read_text())
    # re-run the day through the CLI with the alert command hook: same report, replaced atomically
    sink = tmp_path / "alert.json"
    monkeypatch.setenv("SOCIAL_TONE_ALERT_COMMAND", f"cat > {sink}")
    p = subprocess.run([sys.executable, "-m", "tasks", "monitor", "--predictions", str(root / "pred" / f"{day}.parquet"),
                        "--day", day.isoformat(), "--root", str(root / "mon"), "--drop",
                        str(root / "incoming" / day.isoformat())], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "WARNING" in p.stderr and "ALERT 2026-03-17 spike: topic_12" in p.stderr
    assert json.loads(sink.read_text())["spikes"] == ["topic_12"]
    after = json.loads((out / "report.json").read_text())
    assert after == before
    assert not [p for p in (root / "mon").iterdir() if p.name.startswith(".")], "no temp dirs left"
