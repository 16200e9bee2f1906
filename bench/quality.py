"""Model quality on real and synthetic data, every recipe side by side in one run (issue 12).

For each set, trains and evaluates through the CLI as the DAG does (`python -m tasks train`,
then `evaluate` with this commit's code, so every figure uses the same metrics on the same
test rows):

  default   this commit's defaults (tasks/recipe.py)
  seed      the seed recipe: DataLoader, batch 64, lr 1e-3, fixed 0.5 thresholds, fp32,
            selection and stopping on val loss, at most 20 epochs
  before    the defaults of an earlier commit (--before, default 493dc09: the recipe of
            c2ed8ba), trained with that commit's code from a git worktree
  baseline  the LogReg baseline evaluate fits on the same data (bounded sample)
  family:X  the default recipe with another model family (tasks/model.py), one row each

Sets: `debtags` (bench/devsets.py: Debian packages' descriptions and tags, real labels, text
view only) and `synthetic` (the full-size WarCov-like drop, 70,252 rows).

    python bench/quality.py [--sets debtags synthetic] [--before 493dc09] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = {"loader": "dataloader", "batch_size": 64, "lr": 1e-3, "tune_thresholds": False, "precision": "32",
        "max_epochs": 20, "select_on": "loss", "patience_steps": 0}


def tasks(code: Path, *args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_TRACKING_URI": "none"}
    p = subprocess.run([sys.executable, "-m", "tasks", *map(str, args)], cwd=code, env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tasks {args[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.splitlines()[-1])


def synthetic() -> Path:
    sys.path.insert(0, str(REPO))
    from tasks import synth
    d = Path.home() / ".cache" / "social-tone" / "devsets" / "synthetic"
    if not (d / "_SUCCESS").exists():
        synth.write_labeled(d, d.name, rows=synth.WARCOV_ROWS, seed=42)
    return d


def run_set(name: str, data: Path, work: Path, before: Path | None, families: list[str]) -> list[dict]:
    rows = []
    recipes = {"default": (REPO, []), "seed": (REPO, ["--config", work / "seed.json"])}
    recipes.update({f"family:{f}": (REPO, ["--family", f]) for f in families})
    if before is not None:
        recipes["before"] = (before, [])
    (work / "seed.json").write_text(json.dumps(SEED))
    for recipe, (code, flags) in recipes.items():
        run = work / f"{name}-{recipe}"
        t0 = time.perf_counter()
        tasks(code, "train", "--data", data, "--out", run, "--tracking-uri", "none", *flags)
        train_s = time.perf_counter() - t0
        baseline = recipe == "default"
        r = tasks(REPO, "evaluate", "--run", run, "--data", data, "--out", work / f"{name}-{recipe}-eval",
                  "--tracking-uri", "none", *([] if baseline else ["--no-baseline"]))
        m = json.loads((work / f"{name}-{recipe}-eval" / "metrics.json").read_text())["models"]
        summary = json.loads((run / "train_summary.json").read_text())
        rows.append({"set": name, "recipe": recipe, "macro_f1": m["candidate"]["macro_f1"],
                     "micro_f1": m["candidate"]["micro_f1"], "macro_pr_auc": m["candidate"]["macro_pr_auc"],
                     "train_s": train_s, "epochs": summary.get("epochs_run"), "best_epoch": summary.get("best_epoch")})
        if baseline:
            b = m["baseline"]
            rows.append({"set": name, "recipe": "baseline", "macro_f1": b["macro_f1"], "micro_f1": b["micro_f1"],
                         "macro_pr_auc": b["macro_pr_auc"], "train_s": None, "epochs": None, "best_epoch": None,
                         "unsupported": len(m["candidate"]["unsupported_labels"]), "test_rows": r.get("test_rows")})
        print(f"{name:10s} {recipe:8s} macro-F1 {rows[-1 - baseline]['macro_f1']:.4f} micro-F1 "
              f"{rows[-1 - baseline]['micro_f1']:.4f} train {train_s:6.1f}s", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["debtags", "synthetic"])
    ap.add_argument("--before", default="493dc09", help="git ref whose defaults are 'before' ('' to skip)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--families", nargs="*", default=None,
                    help="model families to add as rows (default: every family but the default's)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tasks.recipe import FAMILIES, TrainConfig
    families = [f for f in FAMILIES if f != TrainConfig.family] if args.families is None else args.families
    sys.path.insert(0, str(REPO / "bench"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        before = None
        if args.before:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(work / "before"), args.before],
                           check=True, capture_output=True)
            before = work / "before"
        try:
            for name in args.sets:
                if name == "debtags":
                    import devsets
                    data = devsets.build_debtags(devsets.CACHE / "devsets" / "debtags")
                else:
                    data = synthetic()
                rows += run_set(name, data, work, before, families)
        finally:
            if before is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                               capture_output=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print("| set | recipe | macro-F1 | micro-F1 | macro PR-AUC | train s | epochs (kept) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        t = f"{r['train_s']:.1f}" if r["train_s"] is not None else "-"
        e = f"{r['epochs']} ({r['best_epoch']})" if r["epochs"] else "-"
        print(f"| {r['set']} | {r['recipe']} | {r['macro_f1']:.4f} | {r['micro_f1']:.4f} | {r['macro_pr_auc']:.4f} "
              f"| {t} | {e} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
