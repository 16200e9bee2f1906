"""Is the threshold rule the lever on rare labels? The default's models of bench/seed_spread.py
(`--select`, one per set and seed; trained there if missing) keep their probabilities; only the
rule that tunes their thresholds on val changes (tasks.metrics.tune_thresholds: a label with at
least `min_positives` val positives gets its own F1-best threshold, shrunk toward the global one
by n / (n + prior)), and each rule's test macro-F1 is printed as the difference from train's
rule, averaged over seeds.

    python bench/threshold_rules.py [--sets ...] [--seeds 42,1,2,3] [--work DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

import numpy as np

from devsets import CACHE  # bench/devsets.py: where it builds the sets
from seed_spread import run
from tasks import dataset as ds, metrics, model as mdl
from tasks.recipe import TrainConfig
from tasks.split import TEST, VAL

MIN_POSITIVES = (1, 3, 5, 8)
PRIORS = (0, 5, 10, 20, 40)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["debtags", "dep11", "dep11-mpnet", "pypi-mpnet", "pypi90-mpnet",
                                                  "pypi90"])
    ap.add_argument("--seeds", default="42,1,2,3")
    ap.add_argument("--work", type=Path, default=Path("/tmp/social-tone-seed-spread"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    train_rule = (metrics.MIN_POSITIVES, metrics.PRIOR)
    out = {}
    for name in args.sets:
        data = CACHE / "devsets" / name
        d = ds.load([data])
        (vi, vt, vy), (ti, tt, ty) = d.part(VAL), d.part(TEST)
        scores = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            model = mdl.load(run(data, args.work, TrainConfig().candidates, seed))
            pv, pt = mdl.predict_proba(model, vi, vt), mdl.predict_proba(model, ti, tt)
            for mp, prior in itertools.product(MIN_POSITIVES, PRIORS):
                thr = metrics.tune_thresholds(vy, pv, min_positives=mp, prior=prior).thresholds
                scores.setdefault((mp, prior), []).append(metrics.macro_f1(ty, pt, thr))
        ref = float(np.mean(scores[train_rule]))
        out[name] = {"train_rule": ref, "min_val_positives": int(vy.sum(0).min()),
                     "delta": {f"{mp}/{p}": float(np.mean(v)) - ref for (mp, p), v in scores.items()}}
        print(f"{name}: train's rule (min_positives {train_rule[0]}, prior {train_rule[1]}) {ref:.4f}; the rarest "
              f"label has {out[name]['min_val_positives']} val positives; others, test macro-F1 minus it:")
        for mp in MIN_POSITIVES:
            print(f"  min_positives {mp}: " + "  ".join(f"prior {p} {out[name]['delta'][f'{mp}/{p}']:+.4f}"
                                                      for p in PRIORS), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "sets": out}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
