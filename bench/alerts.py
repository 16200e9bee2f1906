"""Spike alerts on real volumes: social-tone's detector and NAB's published detectors, one run.

    make bench-alerts    (NAB checkout at NAB_DIR, default ~/.cache/social-tone/nab: `make nab`)

For each NAB scoring profile (standard, reward-low-FP, reward-low-FN):
  - social-tone (`tasks detect`'s code path and settings, tasks/detect.py): its threshold is
    optimised by NAB's optimiser on the tuning categories only (realTweets + artificial), then
    applied unchanged to the held-out categories and the whole corpus;
  - every published detector's result files (NAB's results/), at its published threshold (NAB's
    config/thresholds.json, optimised on the whole corpus) and re-optimised on realTweets;
  - the whole-corpus score of each published detector recomputed here next to NAB's published
    figure (a check of this harness: they agree to 1e-6 where the published threshold is used).
Then, in an analyst's words, each detector's alarms on realTweets at its standard threshold:
events caught, hours before the labelled moment, false alarms per series-month, and the share
of alarms that were real; and social-tone's at each z (tasks/detect_calibration.json, which
the daily monitor quotes next to its alerts).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nab_corpus import HELD_OUT, NAB_COMMIT, PROBATION, PROFILES, TRAIN_CATEGORIES, Corpus  # noqa: E402

from tasks import detect  # noqa: E402

TWEETS = ("realTweets",)
ARTIFICIAL = ("artificialNoAnomaly", "artificialWithAnomaly")
CALIBRATION_Z = (3.0, 4.0, 5.0, 6.0, 8.0)
MONTH = dt.timedelta(days=30.44)

_corpus: Corpus | None = None


def corpus() -> Corpus:
    global _corpus
    if _corpus is None:
        _corpus = Corpus()
    return _corpus


def ours(files: list[str], z: float = detect.SERIES_Z) -> dict[str, np.ndarray]:
    """Each file through `tasks detect`'s own code path (detect_csv), its anomaly_score column read back."""
    c, out = corpus(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            dst = Path(tmp) / "out.csv"
            detect.detect_csv(c.root / "data" / f, dst, z)
            with open(dst, newline="") as fh:
                out[f] = np.array([float(r["anomaly_score"]) for r in csv.DictReader(fh)])
    return out


def normalised(scores: dict, files: list[str], profile: str, threshold=None) -> tuple[float, float]:
    c = corpus()
    raw, thr = c.raw_score({f: scores[f] for f in files}, profile, threshold)
    return c.normalise(raw, files, profile, c.null_raw(files, profile)), thr


def events(c: Corpus, files: list[str], scores: dict[str, np.ndarray], threshold: float) -> dict:
    """Alarm onsets (a point at or above threshold after one below) in an analyst's words."""
    caught = windows = true = false = 0
    leads, months = [], 0.0
    for f in files:
        stamps, _ = c.series(f)
        start = min(int(PROBATION * len(stamps)), int(PROBATION * 5000))
        on = scores[f] >= threshold
        onset = np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))
        onset = onset[onset >= start]
        t = np.array(stamps, dtype="datetime64[s]")
        months += (stamps[-1] - stamps[start]) / MONTH
        inside = np.zeros(len(stamps), bool)
        for (a, b), label in zip(c.windows[f], c.labels[f]):
            m = (t >= np.datetime64(a)) & (t <= np.datetime64(b))
            inside |= m
            if m[start:].any():
                windows += 1
                hits = onset[m[onset]]
                if len(hits):
                    caught += 1
                    leads.append((label - stamps[hits[0]]).total_seconds() / 3600)
        true += int(inside[onset].sum())
        false += int((~inside[onset]).sum())
    return {"caught": caught, "windows": windows, "lead_hours_median": round(float(np.median(leads)), 1) if leads else None,
            "false_alarms_per_series_month": round(false / max(months, 1e-9), 2),
            "alarm_precision": round(true / max(true + false, 1), 3), "alarms": true + false}


def published_rows(detector: str) -> dict:
    c = corpus()
    every, tweets, held, art = c.files(), c.files(TWEETS), c.files(HELD_OUT), c.files(ARTIFICIAL)
    scores = {f: c.published_scores(detector, f) for f in every}
    row = {}
    for p in PROFILES:
        thr = c.thresholds[detector][p]["threshold"]
        row[p] = {"corpus": normalised(scores, every, p, thr)[0], "corpus_published": c.published.get(detector, {}).get(p),
                  "tweets": normalised(scores, tweets, p, thr)[0], "tweets_reoptimised": normalised(scores, tweets, p)[0],
                  "artificial": normalised(scores, art, p, thr)[0], "held_out": normalised(scores, held, p, thr)[0],
                  "threshold": thr}
    row["events"] = events(c, tweets, scores, c.thresholds[detector]["standard"]["threshold"])
    return row


def our_rows() -> dict:
    c = corpus()
    every, tweets, held, tune = c.files(), c.files(TWEETS), c.files(HELD_OUT), c.files(TRAIN_CATEGORIES)
    scores = ours(every)
    row = {}
    for p in PROFILES:
        _, thr = normalised(scores, tune, p)  # NAB's optimiser, on the tuning categories only
        row[p] = {"corpus": normalised(scores, every, p, thr)[0], "tweets": normalised(scores, tweets, p, thr)[0],
                  "tweets_reoptimised": normalised(scores, tweets, p)[0], "held_out": normalised(scores, held, p, thr)[0],
                  "artificial": normalised(scores, c.files(ARTIFICIAL), p, thr)[0],
                  "tuning": normalised(scores, tune, p, thr)[0], "threshold": thr}
    row["events"] = events(c, tweets, scores, 0.5)  # the alarm flag `tasks detect` writes
    row["calibration"] = []
    for z in CALIBRATION_Z:
        row["calibration"].append({"z": z, **events(c, tweets, ours(tweets, z), 0.5)})
    return row


def table(results: dict) -> str:
    pub = results["published"]
    names = ["social-tone"] + sorted(pub, key=lambda d: -pub[d]["standard"]["tweets_reoptimised"])
    rows = {"social-tone": results["ours"], **pub}
    out = ["| detector | realTweets standard | low FP | low FN | realTweets, threshold re-optimised on it (standard) | "
           "artificial (standard) | held-out 4 categories (standard) | whole corpus (standard) | "
           "NAB's published whole-corpus figure |",
           "|---|---|---|---|---|---|---|---|---|"]
    for d in names:
        r = rows[d]
        pubfig = r["standard"].get("corpus_published")
        out.append(f"| {'**social-tone**' if d == 'social-tone' else d} | {r['standard']['tweets']:.1f} | "
                   f"{r['reward_low_FP_rate']['tweets']:.1f} | {r['reward_low_FN_rate']['tweets']:.1f} | "
                   f"{r['standard']['tweets_reoptimised']:.1f} | {r['standard']['artificial']:.1f} | "
                   f"{r['standard']['held_out']:.1f} | "
                   f"{r['standard']['corpus']:.1f} | {'' if pubfig is None else f'{pubfig:.1f}'} |")
    out += ["", "On realTweets, each detector's alarms at its standard threshold (an alarm = a point over the threshold after one below it):", "",
            "| detector | events caught | median hours before the labelled moment | false alarms per series-month | alarms that were real |",
            "|---|---|---|---|---|"]
    for d in names:
        e = rows[d]["events"]
        out.append(f"| {d} | {e['caught']}/{e['windows']} | {e['lead_hours_median']} | "
                   f"{e['false_alarms_per_series_month']} | {e['alarm_precision']:.0%} |")
    out += ["", "social-tone at other alarm thresholds (the daily monitor quotes this table):", "",
            "| z | events caught | false alarms per series-month | alarms that were real |", "|---|---|---|---|"]
    for e in results["ours"]["calibration"]:
        out.append(f"| {e['z']:g} | {e['caught']}/{e['windows']} | {e['false_alarms_per_series_month']} | {e['alarm_precision']:.0%} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--calibration", type=Path, help="write social-tone's per-z table here (tasks/detect_calibration.json)")
    ap.add_argument("--doc", type=Path, help="replace the table between the bench-alerts markers in this Markdown file")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    c = corpus()
    head = subprocess.run(["git", "-C", str(c.root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    t0 = time.time()
    detectors = [d for d in c.detectors() if d != "null"]
    with Pool(args.workers) as pool:
        mine = pool.apply_async(our_rows)
        published = dict(zip(detectors, pool.map(published_rows, detectors)))
        results = {"ours": mine.get(), "published": published}
    results.update(seconds=round(time.time() - t0, 1), nab_commit=head, nab_commit_expected=NAB_COMMIT,
                   settings={"z": detect.SERIES_Z, **{k: str(v) for k, v in detect.SERIES_SPANS.items()}}, machine=f"{platform.node()}, {platform.processor() or platform.machine()}",
                   date=dt.date.today().isoformat())
    text = table(results)
    print(text)
    print(f"\n{results['seconds']} s, NAB {head[:7]}")
    if head and head != NAB_COMMIT:
        print(f"note: NAB checkout at {head[:7]}, not the measured {NAB_COMMIT[:7]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    if args.doc:
        begin, end = "<!-- bench-alerts:begin -->", "<!-- bench-alerts:end -->"
        doc = args.doc.read_text()
        if begin not in doc or end not in doc:
            raise SystemExit(f"{args.doc}: no {begin} ... {end} markers")
        stamp = (f"Measured {results['date']} on {results['machine']} ({results['seconds']} s), NAB {head[:7]}, "
                 f"`make bench-alerts`; social-tone's settings: {results['settings']}.")
        doc = doc[:doc.index(begin) + len(begin)] + "\n" + stamp + "\n\n" + text + "\n" + doc[doc.index(end):]
        args.doc.write_text(doc)
    if args.calibration:
        cal = {"measured_on": "10 real Twitter mention-volume series (NAB realTweets, 5-minute counts, 2-hour means, "
                              "at most one alarm a day)", "settings": results["settings"], "by_z": results["ours"]["calibration"]}
        args.calibration.write_text(json.dumps(cal, indent=1) + "\n")


if __name__ == "__main__":
    main()
