"""How much of a one-run quality comparison is the training seed: test macro-F1 of candidates
trained alone with several seeds, and of the mean probability of all of them per seed (the
`ensemble` model of tasks/train.py, thresholds tuned on val as train tunes them).

bench/quality.py compares recipes in one run at one seed; on a small test split (dep11: 1,890
rows in all) the seed alone moves a recipe's score by a few hundredths, more than the 0.005 that
issue 23's bar allows between the default and the best single family. This measures that spread.

    python bench/seed_spread.py [--sets dep11 dep11-mpnet debtags debtags-mpnet pypi-mpnet pypi90-mpnet] [--seeds 42,1,2,3]
                                [--candidates strong,wide] [--select] [--set key=value,...] [--work DIR] [--json out.json]

Each (set, candidate, seed) is one `train` of this code into --work (kept: a rerun reuses it).
With --select, each (set, seed) is also trained with all the candidates in one run, as
`tasks train --candidates ...` does it: the "selected" column is the test macro-F1 of what its
selection kept (a candidate or the ensemble; "kept" names it). A candidate trains from its seed
alone, so the members of that run are the single runs' models. --set trains every run with
those TrainConfig overrides (e.g. budget_steps=1000), kept in runs of their own.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from devsets import CACHE  # bench/devsets.py: where it builds the sets
from tasks import dataset as ds, metrics, model as mdl
from tasks.rundir import RunDir
from tasks.split import TEST, VAL
from tasks.train import TrainConfig, train


def run(data: Path, work: Path, candidates: str, seed: int, over: dict | None = None) -> Path:
    tag = "".join(f"-{k}={v}" for k, v in sorted((over or {}).items()))
    out = work / data.name / f"{candidates.replace(',', '+')}-{seed}{tag}"
    if not out.exists():  # train writes the run dir whole or not at all
        train([data], out, TrainConfig(**{**(over or {}), "candidates": candidates, "seed": seed}), tracking_uri="none")
    return out


def test_f1(out: Path, part: dict) -> tuple[np.ndarray, float]:
    """(probabilities, macro-F1 at the run's thresholds) on the test split."""
    proba = mdl.predict_proba(mdl.load(out), part[TEST][0], part[TEST][1])
    return proba, metrics.macro_f1(part[TEST][2], proba, np.asarray(RunDir(out).thresholds()["thresholds"]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["dep11", "dep11-mpnet", "debtags", "debtags-mpnet", "pypi-mpnet", "pypi90-mpnet"])
    ap.add_argument("--seeds", default="42,1,2,3")
    ap.add_argument("--candidates", default="strong,wide")
    ap.add_argument("--select", action="store_true", help="also train the candidates together (train's selection)")
    ap.add_argument("--set", default="", help="key=value,...: TrainConfig overrides for every run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/social-tone-seed-spread"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds, names = [int(s) for s in args.seeds.split(",")], args.candidates.split(",")
    over = TrainConfig.parse_overrides(args.set)
    rows = []
    for name in args.sets:
        data = CACHE / "devsets" / name
        d = ds.load([data])
        part = {w: d.part(w) for w in (VAL, TEST)}
        for seed in seeds:
            row, proba = {"set": name, "seed": seed}, {}
            for c in names:
                out = run(data, args.work, c, seed, over)
                proba[c] = {VAL: mdl.predict_proba(mdl.load(out), part[VAL][0], part[VAL][1])}
                proba[c][TEST], row[c] = test_f1(out, part)
            mean = {w: np.mean([proba[c][w] for c in names], axis=0) for w in (VAL, TEST)}
            row["ensemble"] = metrics.macro_f1(part[TEST][2], mean[TEST],
                                               metrics.tune_thresholds(part[VAL][2], mean[VAL]).thresholds)
            if args.select and len(names) > 1:
                out = run(data, args.work, args.candidates, seed, over)
                row["selected"] = test_f1(out, part)[1]
                row["kept"] = RunDir(out).summary()["candidate"]
            rows.append(row)
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    print(f"\ntest macro-F1 over seeds {args.seeds} (mean, sd, min-max); "
          f"torch {torch.__version__}, python {sys.version.split()[0]}, {platform.machine()}")
    summary = {}
    for name in args.sets:
        for c in [*names, "ensemble", *(["selected"] if args.select and len(names) > 1 else [])]:
            v = np.array([r[c] for r in rows if r["set"] == name])
            summary[f"{name}/{c}"] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                      "min": float(v.min()), "max": float(v.max())}
            s = summary[f"{name}/{c}"]
            print(f"{name:12s} {c:9s} {s['mean']:.4f} sd {s['sd']:.4f} ({s['min']:.4f}-{s['max']:.4f})")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows, "summary": summary},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
