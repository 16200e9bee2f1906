"""Model quality on real and synthetic data, every recipe side by side in one run (issue 12).

For each set, trains and evaluates through the CLI as the DAG does (`python -m tasks train`,
then `evaluate` with this commit's code, so every figure uses the same metrics on the same
test rows):

  default   this commit's defaults (tasks/recipe.py)
  seed      the seed recipe (tasks/recipe.py SEED_RECIPE): DataLoader, batch 64, lr 1e-3, fixed 0.5
            thresholds, fp32, no input scaling, selection and stopping on val loss, at most 20 epochs;
            trained with the --before commit's code (the seed's plain Lightning loop)
  before    the defaults of an earlier commit (--before, default 493dc09: the recipe of
            c2ed8ba), trained with that commit's code from a git worktree
  baseline  the LogReg baseline evaluate fits on the same data (bounded sample)
  only:X    the default recipe with one candidate alone (tasks/recipe.py CANDIDATES), one row each
  ensemble  ENSEMBLE's candidates with `--ensemble`: the mean of their probabilities contends in the
            selection (the "kept" column says whether it won)
  variant:X `tasks train` with the flags of `--variant X=FLAGS` (e.g. the asymmetric loss)

Every trained row is exported to ONNX (`tasks export-onnx`, parity-checked) and its serving cost
measured: in-process ONNX Runtime rows/s at batch 1024 on this machine's threads.

Sets (bench/devsets.py builds the real ones): `debtags` (Debian packages' descriptions and
tags: real labels, text view only), `dep11` (Debian's desktop applications: icons and
descriptions, freedesktop categories; small and very imbalanced), `pypi` (a seeded sample of PyPI's
projects: "name: summary" -> Topic classifiers; short texts, held out from the choices made on the
other two), each with its text embedded
by all-MiniLM-L6-v2 (384-d) and, as `<set>-mpnet`, by all-mpnet-base-v2 (768-d, the product's
text dimension), and `synthetic` (the full-size WarCov-like drop, 70,252 rows: plumbing and
speed, not a quality claim).

    python bench/quality.py [--sets debtags dep11 synthetic] [--before 493dc09] [--json out.json]
                            [--alone strong wide ...] [--variant asl='--candidates strong --loss asl']
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tasks(code: Path, *args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "MLFLOW_TRACKING_URI": "none"}
    p = subprocess.run([sys.executable, "-m", "tasks", *map(str, args)], cwd=code, env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tasks {args[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.splitlines()[-1])


ENSEMBLE = ["--candidates", "strong,wide,mlp", "--ensemble", "3"]


def serve_rate(onnx_path: Path, batch: int = 1024, seconds: float = 2.0) -> float:
    """Rows/s of the exported graph in ONNX Runtime (CPU, default threads), batch `batch`."""
    import numpy as np
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.default_rng(0).standard_normal((batch, i.shape[1])).astype(np.float32)
            for i in sess.get_inputs()}
    sess.run(None, feed)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sess.run(None, feed)
        n += batch
    return n / (time.perf_counter() - t0)


def ensemble_cost(img_dim: int = 512, txt_dim: int = 768, n_labels: int = 50, rounds: int = 7) -> dict:
    """Serving cost of what the default may serve (strong alone, or the strong+wide ensemble, one
    graph) and of the ENSEMBLE row's three members: each exported through tasks.export_onnx,
    rows/s in ONNX Runtime at batch 1024 measured in alternating rounds (a shared machine's noise
    hits all alike). Weights do not change the arithmetic: the models are freshly initialised."""
    import statistics
    sys.path.insert(0, str(REPO))
    from tasks import model as mdl
    from tasks.export_onnx import export
    from tasks.recipe import CANDIDATES
    def build(name):
        c = CANDIDATES[name]
        return mdl.FusionMLP(mdl.ModelConfig(img_dim, txt_dim, n_labels, c.get("hidden", 256), c.get("dropout", 0.2),
                                             c["family"], standardize=True))
    graphs = {"strong": ["strong"], "strong+wide": ["strong", "wide"], "strong+wide+mlp": ["strong", "wide", "mlp"]}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: Path(tmp) / f"{k}.onnx" for k in graphs}
        for k, names in graphs.items():
            export(build(names[0]) if len(names) == 1 else mdl.ensemble_of([build(n) for n in names]), paths[k])
        rates = {k: [] for k in paths}
        for r in range(rounds):
            for k in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
                rates[k].append(serve_rate(paths[k], seconds=1.0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"rows_s": med, **{f"{k}_over_strong": med[k] / med["strong"] for k in graphs if k != "strong"}}


def synthetic() -> Path:
    sys.path.insert(0, str(REPO))
    from tasks import synth
    d = Path.home() / ".cache" / "social-tone" / "devsets" / "synthetic"
    if not (d / "_SUCCESS").exists():
        synth.write_labeled(d, d.name, rows=synth.WARCOV_ROWS, seed=42)
    return d


def seed_config(code: Path, work: Path) -> Path:
    """SEED_RECIPE as a config file for `code`'s TrainConfig: the settings it knows (an older
    commit has no candidates or input scaling, and already stops on val loss at 20 epochs)."""
    from tasks.recipe import SEED_RECIPE
    fields = subprocess.run([sys.executable, "-c", "import dataclasses, json, tasks.train as t; "
                             "print(json.dumps([f.name for f in dataclasses.fields(t.TrainConfig)]))"],
                            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True,
                            check=True).stdout.splitlines()[-1]
    path = work / f"seed-{code.name}.json"
    path.write_text(json.dumps({k: v for k, v in SEED_RECIPE.items() if k in json.loads(fields)}))
    return path


def run_set(name: str, data: Path, work: Path, before: Path | None, alone: list[str],
            variants: dict[str, list[str]] | None = None) -> list[dict]:
    """The seed recipe runs on the `before` commit's code when there is one: the seed's
    Lightning module (torch's Adam and Dropout, a logged loss every step), so that the reference
    does not get faster with this commit's training loop; every run is evaluated by this commit."""
    rows = []
    seed_code = before or REPO
    recipes = {"default": (REPO, []), "seed": (seed_code, ["--config", seed_config(seed_code, work)])}
    recipes.update({f"only:{f}": (REPO, ["--candidates", f]) for f in alone})
    recipes.update({f"variant:{k}": (REPO, v) for k, v in (variants or {}).items()})
    recipes["ensemble"] = (REPO, ENSEMBLE)
    if before is not None:
        recipes["before"] = (before, [])
    for recipe, (code, flags) in recipes.items():
        run = work / f"{name}-{recipe}"
        t0 = time.perf_counter()
        tasks(code, "train", "--data", data, "--out", run, "--tracking-uri", "none", *flags)
        train_s = time.perf_counter() - t0
        baseline = recipe == "default"
        r = tasks(REPO, "evaluate", "--model-dir", run, "--data", data, "--out", work / f"{name}-{recipe}-eval",
                  "--tracking-uri", "none", *([] if baseline else ["--no-baseline"]))
        m = json.loads((work / f"{name}-{recipe}-eval" / "metrics.json").read_text())["models"]
        summary = json.loads((run / "train_summary.json").read_text())
        exported = (run / "check_rows.npz").exists()  # (an older commit's run dir has no check rows)
        if exported:
            tasks(REPO, "export-onnx", "--model-dir", run, "--tracking-uri", "none")
        rows.append({"set": name, "recipe": recipe, "macro_f1": m["candidate"]["macro_f1"],
                     "micro_f1": m["candidate"]["micro_f1"], "macro_pr_auc": m["candidate"]["macro_pr_auc"],
                     "train_s": train_s, "epochs": summary.get("epochs_run"), "best_epoch": summary.get("best_epoch"),
                     "kept": summary.get("candidate", "mlp"), "serve_rows_s": serve_rate(run / "model.onnx") if exported else None,
                     "candidates": {c["name"]: round(c.get("val_macro_f1_crossfit") or c["val_macro_f1_tuned"], 4)
                                    for c in summary.get("candidates", [])}})
        if baseline:
            b = m["baseline"]
            rows.append({"set": name, "recipe": "baseline", "macro_f1": b["macro_f1"], "micro_f1": b["micro_f1"],
                         "macro_pr_auc": b["macro_pr_auc"], "train_s": None, "epochs": None, "best_epoch": None,
                         "unsupported": len(m["candidate"]["unsupported_labels"]), "test_rows": r.get("test_rows")})
        print(f"{name:10s} {recipe:8s} macro-F1 {rows[-1 - baseline]['macro_f1']:.4f} micro-F1 "
              f"{rows[-1 - baseline]['micro_f1']:.4f} train {train_s:6.1f}s serving "
              f"{(rows[-1 - baseline]['serve_rows_s'] or 0) / 1e3:.0f}k rows/s", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+",
                    default=["debtags", "debtags-mpnet", "dep11", "dep11-mpnet", "pypi-mpnet", "pypi90-mpnet", "synthetic"])
    ap.add_argument("--before", default="493dc09", help="git ref whose defaults are 'before' ('' to skip)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cost-only", action="store_true", help="only the ensemble's serving cost (interleaved)")
    ap.add_argument("--alone", nargs="*", default=None,
                    help="candidates to train alone, a row each (default: every one in tasks/recipe.py CANDIDATES)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="one more row: `tasks train` with these flags, e.g. asl='--candidates strong --loss asl'")
    args = ap.parse_args()
    if args.cost_only:
        print(json.dumps(ensemble_cost(), indent=2))
        return 0
    sys.path.insert(0, str(REPO))
    from tasks.recipe import CANDIDATES
    alone = list(CANDIDATES) if args.alone is None else args.alone
    variants = {k: shlex.split(v) for k, _, v in (x.partition("=") for x in args.variant)}
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
                if name == "synthetic":
                    data = synthetic()
                else:
                    import devsets
                    data = devsets.BUILDERS[name](devsets.CACHE / "devsets" / name)
                rows += run_set(name, data, work, before, alone, variants)
        finally:
            if before is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)],
                               capture_output=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print("| set | recipe | macro-F1 | micro-F1 | macro PR-AUC | train + select s | vs seed time | epochs (kept) "
          "| model kept | serving rows/s (ORT, batch 1024) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        seed_s = next(x["train_s"] for x in rows if x["set"] == r["set"] and x["recipe"] == "seed")
        t = f"{r['train_s']:.1f}" if r["train_s"] is not None else "-"
        ratio = f"{r['train_s'] / seed_s:.2f}x" if r["train_s"] is not None else "-"
        e = f"{r['epochs']} ({r['best_epoch']})" if r["epochs"] else "-"
        serve = f"{r['serve_rows_s'] / 1e3:.0f}k" if r.get("serve_rows_s") else "-"
        print(f"| {r['set']} | {r['recipe']} | {r['macro_f1']:.4f} | {r['micro_f1']:.4f} | {r['macro_pr_auc']:.4f} "
              f"| {t} | {ratio} | {e} | {r.get('kept', '-')} | {serve} |")
    # issue 23's bar: the default within 0.005 of the best single family and >= the baseline + 0.02
    print("\n| set | default | baseline | default - baseline | best single family | default - best single "
          "| ensemble | default - before | bar met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["set"] for r in rows):
        got = {r["recipe"]: r["macro_f1"] for r in rows if r["set"] == name}
        single = max((k for k in got if k.startswith("only:")), key=got.get, default="default")
        e = got.get("ensemble", float("nan"))
        before = f"{got['default'] - got['before']:+.4f}" if "before" in got else "-"  # --before '': no such row
        met = got["default"] - got["baseline"] >= 0.02 and got["default"] - got[single] >= -0.005
        print(f"| {name} | {got['default']:.4f} | {got['baseline']:.4f} | {got['default'] - got['baseline']:+.4f} "
              f"| {single} {got[single]:.4f} | {got['default'] - got[single]:+.4f} | {e:.4f} "
              f"| {before} | {'yes' if met else 'no'} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
