"""tasks/detect.py: the spike statistic shared by the daily monitor and `tasks detect`, and the
NAB harness that measures it (bench/nab_corpus.py, bench/alerts.py)."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks import detect, monitor

ROOT = Path(__file__).resolve().parents[1]
FIVE_MIN = dt.timedelta(minutes=5)


def tweets_like(days: int = 10, seed: int = 0, burst_at: int | None = None) -> np.ndarray:
    """5-minute Poisson counts with a daily cycle; optionally a 3-hour burst at 5x the level."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 288)
    level = 40 + 25 * np.sin(2 * np.pi * t / 288)
    if burst_at is not None:
        level[burst_at:burst_at + 36] *= 5
    return rng.poisson(level).astype(float)


def test_each_point_sees_only_the_past():
    params = detect.series_params(FIVE_MIN)
    x = tweets_like(burst_at=5 * 288)
    full = detect.detect_series(x, params)
    for cut in (300, 5 * 288 + 10, 7 * 288):
        y = x.copy()
        y[cut:] = np.random.default_rng(cut).poisson(500, len(y) - cut)  # a different future
        part = detect.detect_series(y, params)
        for k in ("z", "score", "alarm"):
            np.testing.assert_array_equal(full[k][:cut], part[k][:cut])


def test_a_burst_raises_one_alarm_and_quiet_noise_none():
    params = detect.series_params(FIVE_MIN)
    quiet = detect.detect_series(tweets_like(seed=1), params)
    assert not quiet["alarm"].any()
    burst = detect.detect_series(tweets_like(seed=1, burst_at=6 * 288), params)
    hits = np.flatnonzero(burst["alarm"])
    assert len(hits) == 1 and 6 * 288 <= hits[0] < 6 * 288 + 36  # once, during the burst
    assert burst["score"][hits[0]] >= 0.5
    assert (burst["score"][hits[0] + 1:hits[0] + 1 + params.cooldown] == 0).all()  # already reported
    assert not burst["alarm"][:params.min_history].any()


def test_series_settings_are_spans_of_time():
    five = detect.series_params(FIVE_MIN)
    assert (five.window, five.smooth, five.cooldown, five.min_history) == (864, 24, 288, 288)
    hourly = detect.series_params(dt.timedelta(hours=1))
    assert (hourly.window, hourly.smooth, hourly.cooldown, hourly.min_history) == (72, 2, 24, 24)


def test_robust_z_on_shares_keeps_the_binomial_floor():
    past = np.full(28, 0.01)  # a quiet topic: MAD 0
    z, med, sigma = detect.robust_z(0.012, past, 10_000)
    assert med == 0.01 and sigma == pytest.approx(np.sqrt(0.01 * 0.99 / 10_000))
    assert z == pytest.approx(0.002 / sigma)
    many = detect.robust_z(np.array([0.012, 0.5]), np.stack([past, past]), 10_000)[0]  # broadcasts
    assert many[0] == pytest.approx(z) and many[1] > 100


def test_daily_monitor_uses_the_same_statistic_and_says_how_far_to_trust_it():
    names = ["a", "b"]
    past = [{"shares": [0.10, 0.02], "rows": 5000} for _ in range(10)]
    pred = {"names": names, "rows": 5000, "counts": np.array([500, 600]), "mean_prob": np.array([0.10, 0.12]),
            "model_versions": ["1"]}
    rep = monitor.analyse(dt.date(2026, 1, 11), pred, None, past)
    b = rep["topics"][1]
    z, _, _ = detect.robust_z(0.12, np.full(10, 0.02), 5000)
    assert b["z"] == round(float(z), 2) and rep["spikes"] == ["b"]
    assert rep["params"]["z"] == detect.DAILY.z
    trust = rep["alarm_trust"]
    cal = json.loads(detect.CALIBRATION.read_text())
    row = min(cal["by_z"], key=lambda r: abs(r["z"] - detect.DAILY.z))
    assert f"caught {row['caught']} of {row['windows']}" in trust and f"{row['false_alarms_per_series_month']:g} false" in trust
    assert detect.trust(4.0, Path("/nonexistent.json")) is None


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tasks", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=120)


def test_cli_writes_scores_and_alarms(tmp_path):
    x = tweets_like(seed=2, burst_at=6 * 288)
    t0 = dt.datetime(2015, 3, 1)
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "".join(f"{t0 + i * FIVE_MIN},{int(v)}\n" for i, v in enumerate(x)))
    p = run_cli("detect", "--csv", str(src), "--out", str(tmp_path / "out.csv"))
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["rows"] == len(x) and result["alarms"] == 1
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score,alarm,z" and len(lines) == len(x) + 1
    alarm_rows = [ln for ln in lines[1:] if ln.split(",")[3] == "1"]
    assert len(alarm_rows) == 1 and float(alarm_rows[0].split(",")[2]) >= 0.5
    assert all(0 <= float(ln.split(",")[2]) < 1 for ln in lines[1:])


@pytest.mark.parametrize("body, problem", [
    ("time,count\n2015-01-01 00:00:00,1\n", "expected the header 'timestamp,value'"),
    ("timestamp,value\n2015-01-01 00:00:00,abc\n", "in.csv:2: could not convert"),
    ("timestamp,value\nyesterday,1\n", "in.csv:2: Invalid isoformat"),
    ("timestamp,value\n2015-01-01 00:00:00,nan\n", "in.csv:2: value 'nan' is not a finite number"),
    ("timestamp,value\n2015-01-01 00:00:00\n", "in.csv:2: expected 'timestamp,value'"),
    ("timestamp,value\n2015-01-01 00:00:00," + "9" * 5000 + "\n", "in.csv:2: line longer than"),
    ("timestamp,value\n", "no rows"),
])
def test_cli_refuses_bad_input_naming_file_and_line(tmp_path, body, problem):
    (tmp_path / "in.csv").write_text(body)
    p = run_cli("detect", "--csv", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out.csv"))
    assert p.returncode == 3 and problem in json.loads(p.stdout.strip().splitlines()[-1])["error"]
    assert not (tmp_path / "out.csv").exists()


def test_row_cap_bounds_memory(tmp_path):
    (tmp_path / "in.csv").write_text("timestamp,value\n" + "2015-01-01 00:00:00,1\n" * 11)
    with pytest.raises(ValueError, match="more than 10 rows"):
        detect.read_series(tmp_path / "in.csv", max_rows=10)


sys.path.insert(0, str(ROOT / "bench"))
import nab_corpus  # noqa: E402

NAB = nab_corpus.nab_path()
needs_nab = pytest.mark.skipif(not nab_corpus.has_corpus(NAB), reason=f"no NAB checkout at {NAB} (`make nab`)")


def test_nab_checkout_comes_from_the_mirror_at_the_commit_and_lands_whole(tmp_path, monkeypatch):
    repo = tmp_path / "mirrors" / "numenta+NAB" / "repo"
    (repo / "labels").mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("no corpus yet\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "empty"], check=True)
    empty = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "labels" / "combined_windows.json").write_text("{}")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "labels"], check=True)
    full = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    (repo / "labels" / "combined_windows.json").write_text('{"later": []}')  # uncommitted: not what is checked out
    monkeypatch.setenv("SOCIAL_TONE_GIT_MIRRORS", str(tmp_path / "mirrors"))
    dest = tmp_path / "cache" / "nab"
    with pytest.raises(SystemExit, match="no labels/combined_windows.json"):
        nab_corpus.checkout(dest, commit=empty)  # a commit without the corpus: nothing left behind
    assert not dest.exists() and not dest.with_name("nab.tmp").exists()
    assert nab_corpus.checkout(dest, commit=full) == dest
    assert (dest / "labels" / "combined_windows.json").read_text() == "{}"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["nab"]
    shutil.rmtree(repo)
    assert nab_corpus.checkout(dest, commit=full) == dest  # there already: no clone


@needs_nab
def test_nab_harness_reproduces_the_published_scores():
    c = nab_corpus.Corpus(NAB)
    files = c.files()
    for detector, profile in (("twitterADVec", "standard"), ("numenta", "reward_low_FN_rate")):
        scores = {f: c.published_scores(detector, f) for f in files}
        raw, _ = c.raw_score(scores, profile, c.thresholds[detector][profile]["threshold"])
        got = c.normalise(raw, files, profile, c.null_raw(files, profile))
        assert got == pytest.approx(c.published[detector][profile], abs=1e-6)


@needs_nab
def test_on_real_tweets_the_detector_beats_twitter_advec():
    """Issue 24's bar, through `tasks detect`'s own code path, threshold from the tuning categories."""
    import alerts
    c = alerts.corpus()
    assert isinstance(c, nab_corpus.Corpus)
    tweets, tune = c.files(["realTweets"]), c.files(nab_corpus.TRAIN_CATEGORIES)
    ours = alerts.ours(tune)
    _, thr = alerts.normalised(ours, tune, "standard")
    mine = alerts.normalised(ours, tweets, "standard", thr)[0]
    advec = {f: c.published_scores("twitterADVec", f) for f in tweets}
    theirs = alerts.normalised(advec, tweets, "standard", c.thresholds["twitterADVec"]["standard"]["threshold"])[0]
    assert "standard" in nab_corpus.PROFILES and mine > theirs + 5, (mine, theirs)


def test_the_report_page_the_dashboard_and_the_webhook_carry_the_trust_line(tmp_path, monkeypatch):
    from tasks import dashboard
    past = [{"day": f"2026-01-{i:02d}", "shares": [0.10, 0.02], "rows": 5000, "topics": [], "spikes": []}
            for i in range(1, 11)]
    pred = {"names": ["a", "b"], "rows": 5000, "counts": np.array([500, 600]), "mean_prob": np.array([0.10, 0.12]),
            "model_versions": ["1"]}
    rep = monitor.analyse(dt.date(2026, 1, 11), pred, None, past)
    assert "How far to trust an alarm" in monitor.page(rep)
    assert "How far to trust an alarm" in dashboard.render([rep])
    monkeypatch.setenv("SOCIAL_TONE_ALERT_COMMAND", f"cat > {tmp_path / 'payload.json'}")
    monitor.alert(rep)
    sent = json.loads((tmp_path / "payload.json").read_text())
    assert sent["spikes"] == ["b"] and sent["alarm_trust"] == rep["alarm_trust"]


def test_blocks_of_windows_give_the_same_scores(monkeypatch):
    """detect_series judges the windows in blocks (flat memory on a long series): the block size
    changes nothing."""
    x = tweets_like(days=6, seed=3, burst_at=4 * 288)
    params = detect.series_params(FIVE_MIN)
    whole = detect.detect_series(x, params)
    monkeypatch.setattr(detect, "CELLS", 5000)  # blocks of 5 windows
    blocks = detect.detect_series(x, params)
    for k in ("z", "score", "alarm"):
        np.testing.assert_array_equal(whole[k], blocks[k])
