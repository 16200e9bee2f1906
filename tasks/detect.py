"""Spike detection, one statistic for every caller: the daily monitor (a topic's share of a day's
posts against the days before) and `tasks detect` (a volume series in NAB's timestamp,value CSV).

Streaming: a point is judged only against the points before it (tested). The statistic is a
robust z-score against a trailing window,

    z = (y - median(past)) / max(1.4826 * MAD(past), floor),

where the floor stops a quiet series' tiny MAD from turning noise into alarms: the binomial
sigma sqrt(m (1 - m) / n) for a share of n posts (the daily monitor), a relative 1e-3 of the
median for a bare volume.

A volume series sampled every few minutes needs two things a daily share does not (measured on
NAB's real Twitter volumes, docs/benchmarks.md "Spike alerts"):
  - `smooth`: y is the mean of the last k points, so one noisy interval is not an event;
  - `cooldown`: one alarm per event; for that many points after an alarm the score is 0
    (an analyst hears about a burst once, not on every point of it).
The score maps z onto [0, 1) monotonically, 0.5 at the alarm threshold.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np

from tasks.spike_params import DAILY, SERIES_SPANS, SERIES_Z, SpikeParams, series_params  # noqa: F401

MAD_SIGMA = 1.4826  # MAD of a normal sample x this = its standard deviation
CELLS = 1 << 22     # window values judged at once by detect_series (32 MB of float64 per temporary)


def median_step(stamps: list[dt.datetime]) -> dt.timedelta:
    if len(stamps) < 2:
        return dt.timedelta(minutes=5)
    d = np.diff(np.array(stamps, dtype="datetime64[us]")).astype("timedelta64[us]").astype(np.int64)
    d = d[d > 0]
    return dt.timedelta(microseconds=int(np.median(d))) if len(d) else dt.timedelta(minutes=5)


CALIBRATION = Path(__file__).with_name("detect_calibration.json")  # written by `make bench-alerts`


def trust(z: float, calibration: Path = CALIBRATION) -> str | None:
    """What an alarm at this z has been worth on real volumes, in one sentence (the benchmark row
    with the nearest z); None without a calibration."""
    try:
        cal = json.loads(calibration.read_text())
        row = min(cal["by_z"], key=lambda r: abs(r["z"] - z))
    except (OSError, ValueError, KeyError):
        return None
    return (f"How far to trust an alarm: the same robust z-score at z >= {row['z']:g}, on {cal['measured_on']}, caught "
            f"{row['caught']} of {row['windows']} labelled events, with {row['false_alarms_per_series_month']:g} "
            f"false alarms per series per month; {row['alarm_precision']:.0%} of its alarms were real events "
            "(docs/benchmarks.md, 'Spike alerts').")


def robust_z(value, past, n=None):
    """(z, median, sigma) of `value` against `past` (last axis: the trailing window).

    With `n` (posts that day) the values are shares and the floor is binomial. Broadcasts: the
    monitor passes one topic's window, the series detector every point's window at once."""
    past = np.asarray(past, dtype=float)
    med = np.median(past, axis=-1)
    mad = np.median(np.abs(past - med[..., None]), axis=-1)
    if n is not None:
        n = np.maximum(np.asarray(n, dtype=float), 1.0)
        floor = np.maximum(np.sqrt(np.maximum(med * (1 - med), 1e-12) / n), 1.0 / n)
    else:
        floor = np.maximum(np.abs(med) * 1e-3, 1e-9)
    sigma = np.maximum(MAD_SIGMA * mad, floor)
    return (np.asarray(value, dtype=float) - med) / sigma, med, sigma


def score_of(z, z_thr: float):
    """Monotone map of z onto [0, 1): 0 at or below the median, 0.5 at the alarm threshold."""
    zp = np.maximum(np.asarray(z, dtype=float), 0.0)
    return zp / (zp + z_thr)


def trailing_mean(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1:
        return y
    c = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - k, 0)
    return (c[i] - c[lo]) / (i - lo)


def detect_series(values, params: SpikeParams, totals=None) -> dict:
    """z, score and alarm for every point of a series, each judged on the points before it."""
    y = np.asarray(values, dtype=float)
    n = None if totals is None else np.maximum(np.asarray(totals, dtype=float), 1.0)
    expected = y
    if n is not None:
        y = y / n
    y = trailing_mean(y, params.smooth)
    size, w = len(y), params.window
    first = max(min(params.min_history, w), 1)
    z = np.zeros(size)
    for t in range(first, min(w, size)):  # warm-up: the window is what there is so far
        z[t] = robust_z(y[t], y[:t], None if n is None else n[t])[0]
    if size > w:  # then many points' windows at once (past[t] = y[t - w .. t - 1]), in blocks of
        # about CELLS values: memory stays flat whatever the series' length
        past = np.lib.stride_tricks.sliding_window_view(y[:-1], w)
        step = max(1, CELLS // w)
        for a in range(w, size, step):
            b = min(a + step, size)
            z[a:b] = robust_z(y[a:b], past[a - w:b - w], None if n is None else n[a:b])[0]
    alarm = (z >= params.z) & (expected >= params.min_count)
    alarm[:first] = False
    score = score_of(z, params.z)
    if params.cooldown:
        quiet = np.zeros(size, bool)  # inside an earlier alarm's cooldown: already reported
        last = None
        for t in np.flatnonzero(alarm):
            if last is not None and t - last <= params.cooldown:
                alarm[t] = False
                continue
            quiet[t + 1:t + 1 + params.cooldown] = True
            last = t
        score = np.where(quiet, 0.0, score)
    return {"z": z, "score": score, "alarm": alarm}


MAX_ROWS = 10_000_000  # ~10 years of 30-second points; a larger file is refused, not read
MAX_FIELD = 64         # characters in a timestamp or a value


def read_series(path: Path, max_rows: int = MAX_ROWS) -> tuple[list[dt.datetime], np.ndarray]:
    """NAB's format: a header `timestamp,value`, then one row per point, taken in file order
    (the order they arrived in: real exports repeat or step back an hour at a clock change).
    Errors name the file and the line; memory is bounded by max_rows."""
    stamps, values = [], []
    with open(path, newline="", encoding="utf-8", errors="strict") as f:
        for i, line in enumerate(f, start=1):
            if i > max_rows + 1:
                raise ValueError(f"{path}: more than {max_rows} rows")
            if len(line) > 2 * MAX_FIELD + 8:
                raise ValueError(f"{path}:{i}: line longer than {2 * MAX_FIELD + 8} characters")
            row = next(csv.reader([line]), [])
            if i == 1:
                if [h.strip() for h in row[:2]] != ["timestamp", "value"]:
                    raise ValueError(f"{path}:1: expected the header 'timestamp,value', got {line.strip()[:80]!r}")
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{i}: expected 'timestamp,value', got {line.strip()[:80]!r}")
            try:
                t, v = dt.datetime.fromisoformat(row[0].strip()), float(row[1])
            except ValueError as e:
                raise ValueError(f"{path}:{i}: {e}") from None
            if not np.isfinite(v):
                raise ValueError(f"{path}:{i}: value {row[1]!r} is not a finite number")
            stamps.append(t)
            values.append(v)
    if not values:
        raise ValueError(f"{path}: no rows")
    return stamps, np.asarray(values)


def detect_csv(src: Path, out: Path, z: float = SERIES_Z) -> dict:
    """`tasks detect`: NAB's CSV in, timestamp,value,anomaly_score,alarm,z out (written atomically)."""
    from tasks.fsutil import atomic_write_text
    stamps, values = read_series(src)
    params = series_params(median_step(stamps), z)
    res = detect_series(values, params)
    lines = ["timestamp,value,anomaly_score,alarm,z"]
    lines += [f"{s.isoformat(sep=' ')},{v:.10g},{sc:.6f},{int(a)},{zz:.4f}"
              for s, v, sc, a, zz in zip(stamps, values, res["score"], res["alarm"], res["z"])]
    atomic_write_text(Path(out), "\n".join(lines) + "\n")
    return {"rows": len(values), "alarms": int(res["alarm"].sum()), "params": dataclasses.asdict(params)}
