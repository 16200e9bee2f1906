"""`tasks monitor`: topic volumes vs a trailing window (spikes), input and prediction drift.

For one day it reads that day's predictions (Parquet from `tasks score`) and, for input drift,
the day's drop; it compares them with the reports of up to --window earlier days in the
monitoring root, and writes monitoring/<day>/ atomically (a re-run replaces it):
report.json, volumes.png, report.html and input_stats.npz (the reference for later days).

A topic's volume is its expected number of posts, the sum of its probabilities: with an
imperfect classifier it reacts to an event more reliably than the count of posts above the
tuned threshold (both are in the report). Spike statistic (per topic): a robust z-score of
today's expected share against the window's daily shares,  z = (share - median) / max(1.4826 * MAD, sqrt(median * (1 - median) / N)),
where N is today's number of posts: the binomial term keeps a quiet topic's tiny MAD from
turning noise into alarms. A spike needs z >= --z (default 4), at least --min-count expected posts
and --min-history earlier days (before that the day is "warming up").

Input drift (per modality): the shift of the day's mean embedding from the window's mean,
in units of the window's spread: ||mean_day - mean_ref|| / sqrt(sum of per-dimension
variances). Sampling noise alone gives ~sqrt(1/N + 1/N_window), so a modality is flagged when
the shift exceeds max(--drift, 4 x that noise). Prediction drift: PSI between the day's
topic-share distribution and the window's (0.1 = moderate, 0.25 = major by convention).

Memory is flat in the day's size: Parquet is read in record batches, the drop memory-mapped
and reduced in chunks.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import subprocess
import urllib.request
from pathlib import Path

import numpy as np

from tasks import env, tracking
from tasks.detect import DAILY, robust_z, trust
from tasks.contract import IMG, TXT, open_drop, read_rows
from tasks.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from tasks.monitoring import CHART, PAGE, REPORT, STATS, day_dir, drift_in_words

log = logging.getLogger(__name__)
CHUNK = 65536
STATS_CHUNK = 8192


def prediction_stats(predictions: Path) -> dict:
    """Per-topic counts (labels above threshold) and mean probabilities, batch by batch."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import pyarrow as pa
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(0)  # hand freed batches back at once: flat RSS over many batches
    f = pq.ParquetFile(predictions, pre_buffer=False)
    names = [c[2:] for c in f.schema_arrow.names if c.startswith("p_")]
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros(len(names), np.int64)
    prob_sum = np.zeros(len(names), np.float64)
    rows, versions = 0, set()
    for batch in f.iter_batches(batch_size=STATS_CHUNK, columns=["topics", "model_version"] + [f"p_{n}" for n in names]):
        rows += batch.num_rows
        versions.update(pc.unique(batch.column("model_version")).to_pylist())
        vc = pc.value_counts(pc.list_flatten(batch.column("topics")))
        for item in vc.to_pylist():
            counts[index[item["values"]]] += item["counts"]
        for i, n in enumerate(names):
            prob_sum[i] += float(pc.sum(batch.column(f"p_{n}")).as_py() or 0.0)
    return {"names": names, "rows": rows, "counts": counts, "mean_prob": prob_sum / max(rows, 1),
            "model_versions": sorted(versions)}


def input_stats(drop: Path) -> dict[str, np.ndarray]:
    """Mean and variance per dimension of each modality (float64 accumulation, chunked)."""
    d = open_drop(drop)
    out = {}
    for name, arr, fname in (("img", d.img, IMG), ("txt", d.txt, TXT)):
        s = np.zeros(arr.shape[1]); ss = np.zeros(arr.shape[1])
        for start in range(0, len(arr), STATS_CHUNK):  # 8192 x 768 float64 = 50 MB at a time
            x = read_rows(d.path / fname, start, start + STATS_CHUNK).astype(np.float64)
            s += x.sum(0); ss += np.einsum("ij,ij->j", x, x)
        n = max(len(arr), 1)
        out[f"{name}_mean"] = s / n
        out[f"{name}_var"] = np.maximum(ss / n - (s / n) ** 2, 0.0)
    return out


def history(root: Path, day: dt.date, window: int) -> list[dict]:
    """Earlier days' reports (oldest first), with their input stats when present."""
    found = []
    for back in range(window, 0, -1):
        d = day - dt.timedelta(days=back)
        rep = day_dir(root, d) / REPORT
        if not rep.exists():
            continue
        r = json.loads(rep.read_text())
        st = rep.parent / STATS
        if st.exists():
            with np.load(st, allow_pickle=False) as z:
                r["_stats"] = {k: z[k] for k in z.files}
        found.append(r)
    return found


def psi(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    p = np.clip(p / max(p.sum(), eps), eps, None); q = np.clip(q / max(q.sum(), eps), eps, None)
    return float(np.sum((p - q) * np.log(p / q)))


def analyse(day: dt.date, pred: dict, stats: dict | None, past: list[dict], z_thr: float = DAILY.z,
            min_count: int = DAILY.min_count, min_history: int = DAILY.min_history, drift_thr: float = 0.05,
            psi_thr: float = 0.1) -> dict:
    names, n = pred["names"], pred["rows"]
    shares = np.asarray(pred["mean_prob"], dtype=float)  # expected share: sum of probabilities / posts
    past_shares = np.array([r["shares"] for r in past]) if past else np.zeros((0, len(names)))
    warming = len(past) < min_history
    topics, spikes = [], []
    for k, name in enumerate(names):
        t = {"topic": name, "count": int(pred["counts"][k]), "expected": round(float(shares[k]) * n, 1),
             "share": float(shares[k])}
        if len(past):
            z, med, sigma = (float(v) for v in robust_z(float(shares[k]), past_shares[:, k], n))
            # spike_level: the volume that would have made today a spike (the dashboard's band)
            t.update(median_share=med, expected_count=round(med * n, 1), z=round(float(z), 2),
                     spike_level=round(max((med + z_thr * sigma) * n, min_count), 1))
            t["spike"] = bool(not warming and z >= z_thr and t["expected"] >= min_count)
            if t["spike"]:
                spikes.append(t)
        topics.append(t)
    drift = {}
    with_stats = [r["_stats"] for r in past if "_stats" in r]
    if stats is not None and with_stats:
        for m in ("img", "txt"):
            ref_mean = np.mean([s[f"{m}_mean"] for s in with_stats], axis=0)
            ref_var = np.mean([s[f"{m}_var"] for s in with_stats], axis=0)
            shift = float(np.linalg.norm(stats[f"{m}_mean"] - ref_mean) / np.sqrt(ref_var.sum() + 1e-12))
            # sampling noise alone gives ~sqrt(1/N + 1/N_ref): require 4x that, and the effect-size floor
            noise = float(np.sqrt(1 / max(n, 1) + 1 / max(sum(r["rows"] for r in past if "_stats" in r), 1)))
            limit = max(drift_thr, 4 * noise)
            drift[m] = {"mean_shift": round(shift, 4), "noise": round(noise, 4), "threshold": round(limit, 4),
                        "flagged": bool(shift > limit)}
    if len(past):
        p = psi(shares, past_shares.mean(axis=0))
        drift["predictions"] = {"psi": round(p, 4), "threshold": psi_thr, "flagged": bool(p > psi_thr)}
    return {"day": day.isoformat(), "rows": n, "model_versions": pred["model_versions"],
            "history_days": len(past), "status": "warming_up" if warming else "ok",
            "params": {"z": z_thr, "min_count": min_count, "min_history": min_history},
            "shares": [float(s) for s in shares], "topic_names": names, "topics": topics,
            "spikes": [s["topic"] for s in spikes], "drift": drift, "alarm_trust": trust(z_thr),
            "alerts": [f"spike: {s['topic']} ~{s['expected']:.0f} posts ({s['share']:.2%}, usual {s['median_share']:.2%}, "
                       f"z={s['z']})" for s in spikes]
                      + [f"drift: {m} {'PSI' if m == 'predictions' else 'mean shift'} "
                         f"{v.get('psi', v.get('mean_shift'))} > {v['threshold']}"
                         for m, v in drift.items() if v["flagged"]]}


def chart(report: dict, past: list[dict], path: Path, top: int = 6) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = report["topic_names"]
    days = [r["day"] for r in past] + [report["day"]]
    counts = np.array([[t["expected"] for t in r["topics"]] for r in past] + [[t["expected"] for t in report["topics"]]])
    spiked = [names.index(s) for s in report["spikes"]]
    busiest = list(np.argsort(-counts.sum(0))[:top])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(days))
    for k in dict.fromkeys(spiked + busiest):
        ax.plot(x, counts[:, k], marker=".", lw=2.2 if k in spiked else 1, label=names[k] + (" (spike)" if k in spiked else ""))
        if k in spiked:
            ax.scatter([x[-1]], [counts[-1, k]], s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=5)
    ax.set_xticks(x[::max(1, len(x) // 10)], [d[5:] for d in days][::max(1, len(x) // 10)])
    ax.set_ylabel("expected posts (sum of probabilities)")
    ax.set_title(f"Topic volumes, {report['day']} vs the {len(past)} days before")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def page(report: dict, dashboard_link: str | None = None) -> str:
    rows = "".join(f"<tr{' class=spike' if t.get('spike') else ''}><td>{html.escape(t['topic'])}</td>"
                   f"<td>{t['count']}</td><td>{t['share']:.2%}</td><td>{t.get('median_share', float('nan')):.2%}</td>"
                   f"<td>{t.get('z', '')}</td></tr>" for t in sorted(report["topics"], key=lambda t: -t.get("z", 0)))
    drift = "".join(f"<li>{html.escape(line)}</li>" for line in drift_in_words(report["drift"])) or \
        "<li>not measured yet: no earlier days to compare with</li>"
    alerts = "".join(f"<li>{html.escape(a)}</li>" for a in report["alerts"]) or "<li>none</li>"
    trust_line = f"<p><small>{html.escape(report['alarm_trust'])}</small></p>" if report.get("alarm_trust") else ""
    dashboard = f'<p><a href="{html.escape(dashboard_link)}">All days: the trends dashboard</a></p>' if dashboard_link else ""
    return f"""<!doctype html><meta charset="utf-8"><title>social-tone {report['day']}</title>
<style>body{{font:14px sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:right}} .spike{{background:#fdd}}</style>
<h1>Topic monitoring, {report['day']}</h1>
<p>{report['rows']} posts, model version(s) {', '.join(report['model_versions'])}; {report['history_days']} earlier
days in the window; status: {report['status']}.</p>
<h2>Alerts</h2><ul>{alerts}</ul>{trust_line}
<img src="{CHART}" alt="topic volumes" style="max-width:100%">
<h2>Drift</h2><ul>{drift}</ul>
{dashboard}<h2>Topics (highest z first)</h2><table><tr><th>topic</th><th>posts</th><th>share</th><th>usual share</th><th>z</th></tr>{rows}</table>
"""


def alert(report: dict) -> None:
    """WARNING lines, plus the optional hooks: SOCIAL_TONE_ALERT_WEBHOOK (POST JSON) and
    SOCIAL_TONE_ALERT_COMMAND (run with the JSON on stdin). A failing hook is logged, not fatal."""
    if not report["alerts"]:
        return
    for a in report["alerts"]:
        log.warning("ALERT %s %s", report["day"], a)
    payload = json.dumps({"day": report["day"], "alerts": report["alerts"], "spikes": report["spikes"],
                          "alarm_trust": report.get("alarm_trust")}).encode()
    if url := env.get("SOCIAL_TONE_ALERT_WEBHOOK"):
        try:
            req = urllib.request.Request(url, payload, {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).close()
        except OSError as e:
            log.error("alert webhook %s failed: %s", url, e)
    if cmd := env.get("SOCIAL_TONE_ALERT_COMMAND"):
        p = subprocess.run(cmd, shell=True, input=payload, capture_output=True, timeout=60)
        if p.returncode != 0:
            log.error("alert command failed (%d): %s", p.returncode, p.stderr.decode()[-500:])


def monitor(predictions: Path, day: dt.date, root: Path, *, drop: Path | None = None, window: int = DAILY.window,
            tracking_uri: str | None = None, dashboard: Path | None = None, **thresholds) -> dict:
    """One day's report under root/<day>/; with `dashboard`, the trends page over every day is
    rebuilt there too (tasks/dashboard.py)."""
    pred = prediction_stats(predictions)
    stats = input_stats(drop) if drop is not None else None
    past = history(root, day, window)
    report = analyse(day, pred, stats, past, **thresholds)
    with atomic_dir(day_dir(root, day)) as tmp:
        atomic_write_json(tmp / REPORT, report)
        if stats is not None:
            np.savez(tmp / STATS, **stats)
        chart(report, past, tmp / CHART)
        link = os.path.relpath(dashboard, day_dir(root, day)) if dashboard else None
        atomic_write_text(tmp / PAGE, page(report, link))
        with tracking.run(tracking_uri, run_name=f"monitor-{day.isoformat()}", experiment="social-tone-monitoring") as active:
            tracking.log_metrics(active, {"rows": report["rows"], "spikes": len(report["spikes"]),
                                          **{f"drift_{m}": v.get("psi", v.get("mean_shift"))
                                             for m, v in report["drift"].items()}})
            tracking.log_artifacts(active, tmp, f"monitoring/{day.isoformat()}")
    alert(report)
    if dashboard is not None:
        from tasks import dashboard as dash
        log.info("dashboard: %s", dash.build(root, dashboard))
    log.info("%s: %d posts, %d spikes %s, drift %s", day, report["rows"], len(report["spikes"]), report["spikes"],
             {m: v["flagged"] for m, v in report["drift"].items()})
    return report
