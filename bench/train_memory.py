"""Training and evaluation as the history of drops grows: peak memory and time per epoch.

Runs `python -m tasks train` and `python -m tasks evaluate` (as the DAG does, one process
each) on the first 1, then 10 (by default) full-size synthetic drops, and reads each process's
peak RSS from the kernel (wait4). With --compare-ref, the same commands also run on an older
commit (a git worktree), side by side in the same run.

    python bench/train_memory.py [--drops 1 10] [--epochs 2] [--compare-ref 493dc09] [--json out.json]

The older commit's run is `train` only: its evaluate fits the LogReg baseline on every train
row, which at 10 drops takes far too long to be a useful comparison.

The drops are cached under ~/.cache/social-tone/bench/history (70,252 rows each, 360 MB).
Evaluate's LogReg baseline runs its one-vs-rest fits in joblib worker processes, whose memory
is not in the figure; it fits on a bounded sample (tasks/recipe.py BASELINE_ROWS).
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
CACHE = Path.home() / ".cache" / "social-tone" / "bench" / "history"


def ensure_drops(n: int) -> list[Path]:
    from tasks import synth
    out = []
    for k in range(n):
        d = CACHE / f"drop-{k:02d}"
        if not (d / "_SUCCESS").exists():
            print(f"writing {d}", flush=True)
            synth.write_labeled(d, d.name, rows=synth.WARCOV_ROWS, seed=100 + k, id_start=k * 1_000_000, world_seed=42)
        out.append(d)
    return out


def peak_rss_mb(cmd: list[str], code: Path) -> tuple[dict, float]:
    """Like run, reaping the child with wait4 to get its own peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_TRACKING_URI": "none"}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, "-m", "tasks", *cmd], cwd=code, env=env, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "result": json.loads(stdout.splitlines()[-1])}, ru.ru_maxrss / 1024


def measure(drops: list[Path], code: Path, label: str, epochs: int, work: Path, evaluate: bool = True) -> dict:
    run_dir, eval_dir = work / f"{label}-{len(drops)}-run", work / f"{label}-{len(drops)}-eval"
    train, train_mb = peak_rss_mb(["train", "--data", *map(str, drops), "--out", str(run_dir), "--epochs", str(epochs),
                                   "--patience", str(epochs), "--tracking-uri", "none"], code)
    history = json.loads((run_dir / "history.json").read_text())
    n_rows = sum(json.loads((d / "manifest.json").read_text())["rows"] for d in drops)
    if not evaluate:  # the older code's evaluate fits the baseline on every train row: hours at 10 drops
        row = {"code": label, "drops": len(drops), "rows": n_rows, "train_s": train["wall_s"], "train_peak_mb": train_mb,
               "epoch_s": [h["seconds"] for h in history]}
        print(f"{label:8s} {len(drops):3d} drops | train {train['wall_s']:7.1f}s peak {train_mb:7.0f} MB, epochs "
              f"{', '.join(f'{s:.1f}' for s in row['epoch_s'])} s", flush=True)
        return row
    ev, eval_mb = peak_rss_mb(["evaluate", "--model-dir", str(run_dir), "--data", *map(str, drops), "--out", str(eval_dir),
                               "--tracking-uri", "none"], code)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    row = {"code": label, "drops": len(drops), "rows": n_rows,
           "train_s": train["wall_s"], "train_peak_mb": train_mb,
           "epoch_s": [h["seconds"] for h in history], "evaluate_s": ev["wall_s"], "evaluate_peak_mb": eval_mb,
           "test_macro_f1": metrics["models"]["candidate"]["macro_f1"],
           "baseline_macro_f1": metrics["models"].get("baseline", {}).get("macro_f1")}
    print(f"{label:8s} {row['drops']:3d} drops {row['rows']:8d} rows | train {row['train_s']:7.1f}s peak "
          f"{train_mb:7.0f} MB, epochs {', '.join(f'{s:.1f}' for s in row['epoch_s'])} s | evaluate "
          f"{row['evaluate_s']:6.1f}s peak {eval_mb:7.0f} MB | macro-F1 {row['test_macro_f1']:.4f} "
          f"(baseline {row['baseline_macro_f1']:.4f})", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--drops", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--compare-ref", default=None, help="also run this git ref's code (e.g. the commit before)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    drops = ensure_drops(max(args.drops))
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-memory-") as tmp:
        work = Path(tmp)
        codes = {"HEAD": REPO}
        if args.compare_ref:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(work / "old"),
                            args.compare_ref], check=True, capture_output=True)
            codes[args.compare_ref] = work / "old"
        try:
            for n in args.drops:
                for label, code in codes.items():
                    rows.append(measure(drops[:n], code, label, args.epochs, work, evaluate=code == REPO))
        finally:
            if args.compare_ref:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "old")],
                               capture_output=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for label in dict.fromkeys(r["code"] for r in rows):
        mine = [r for r in rows if r["code"] == label]
        if len(mine) >= 2:
            a, b = mine[0], mine[-1]
            per_row = [min(r["epoch_s"]) / r["rows"] * 1e6 for r in (a, b)]
            print(f"{label}: fastest epoch per million rows {per_row[0]:.1f}s ({a['drops']} drops) vs "
                  f"{per_row[1]:.1f}s ({b['drops']} drops): x{per_row[1] / per_row[0]:.2f} (linear = x1.00)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
