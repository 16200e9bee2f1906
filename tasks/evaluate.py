"""`tasks evaluate`: candidate vs champion vs logistic-regression baseline on the same test rows.

Writes metrics.json, plots and a markdown model card into --out (atomically), and logs them to
the candidate's MLflow run.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tasks import baseline as bl
from tasks import dataset as ds
from tasks import metrics, model as mdl, plots, tracking
from tasks.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from tasks.split import TEST, TRAIN, VAL
from tasks.recipe import BASELINE_ROWS
from tasks.rundir import METRICS, MODEL_CARD, RunDir

log = logging.getLogger(__name__)
HEADLINE = ("macro_f1", "micro_f1", "macro_precision", "macro_recall", "macro_pr_auc",
            "exact_match_accuracy", "label_accuracy")


def load_thresholds(run_dir: Path) -> tuple[list[str], np.ndarray]:
    t = RunDir(run_dir).thresholds()
    return t["label_names"], np.asarray(t["thresholds"], dtype=np.float32)


def _load_run(run_dir: Path, d: ds.Dataset):
    names, thr = load_thresholds(run_dir)
    model = mdl.load(run_dir)
    if names != d.label_names or (model.cfg.img_dim, model.cfg.txt_dim) != (d.img_dim, d.txt_dim):
        raise ValueError(f"{run_dir}: model labels or dims do not match the evaluation data")
    return model, thr


def _predict(predictors: dict, d: ds.Dataset, which: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every predictor on one split, reading each block once: (labels, {name: probabilities})."""
    ys, ps = [], {k: [] for k in predictors}
    for x, y in d.iter_xy(which):
        ys.append(y)
        for k, f in predictors.items():
            ps[k].append(f(x[:, :d.img_dim], x[:, d.img_dim:]))
    if not ys:
        return np.zeros((0, len(d.label_names)), np.float32), {k: np.zeros((0, len(d.label_names))) for k in ps}
    return np.concatenate(ys), {k: np.concatenate(v) for k, v in ps.items()}


def evaluate(run_dir: Path, data: list[Path], out: Path, *, champion: Path | None = None,
             with_baseline: bool = True, tracking_uri: str | None = None,
             baseline_rows: int = BASELINE_ROWS) -> dict:
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    summary = RunDir(run_dir).summary()
    # the candidate's own data selection: the same split seed and window of drops
    d = ds.load(data, seed=int(summary["params"]["split_seed"]), last=int(summary["params"].get("window_drops", 0)))
    if len(d.index(TEST)) == 0:
        raise ValueError(f"{data}: the test split is empty")
    runs = {"candidate": _load_run(run_dir, d)}
    if champion is not None:
        try:
            runs["champion"] = _load_run(Path(champion), d)
        except (OSError, ValueError, KeyError) as e:
            log.warning("champion %s not comparable: %s", champion, e)
    predictors = {k: (lambda img, txt, m=m: mdl.predict_proba(m, img, txt)) for k, (m, _) in runs.items()}
    thresholds = {k: thr for k, (_, thr) in runs.items()}
    if with_baseline:
        clf = bl.fit(*d.part(TRAIN, limit=baseline_rows, seed=int(summary["params"]["split_seed"])))
        predictors["baseline"] = lambda img, txt: bl.predict_proba(clf, img, txt)
        val_y, val_p = _predict({"baseline": predictors["baseline"]}, d, VAL)
        thresholds["baseline"] = metrics.tune_thresholds(val_y, val_p["baseline"]).thresholds
    test_y, probas = _predict(predictors, d, TEST)
    models = {}
    for k, p in probas.items():
        models[k] = metrics.compute(test_y, p, thresholds[k], d.label_names)
        models[k]["macro_f1_at_0.5"] = metrics.macro_f1(test_y, p, 0.5)
    t = RunDir(run_dir).thresholds()  # how each of the candidate's thresholds was set, next to its test figures
    n = len(d.label_names)
    for row, thr, method, support in zip(models["candidate"]["per_class"], t["thresholds"],
                                         t.get("methods") or ["?"] * n, t.get("val_support") or [None] * n):
        row.update({"threshold": thr, "threshold_method": method, "val_support": support})
    result = {"candidate_run": str(run_dir), "champion_run": str(champion) if "champion" in models else None,
              "data_version": d.version, "test_rows": int(len(test_y)), "split_seed": summary["params"]["split_seed"],
              "baseline_train_rows": int(min(baseline_rows, len(d.index(TRAIN)))) if with_baseline else None,
              "models": models, "selection": selection_optimism(summary, models["candidate"]["macro_f1"]),
              "seconds": time.perf_counter() - t0}
    for name, m in models.items():
        log.info("%-9s macro-F1 %.4f (at 0.5: %.4f) micro-F1 %.4f macro PR-AUC %.4f exact-match %.4f",
                 name, m["macro_f1"], m["macro_f1_at_0.5"], m["micro_f1"], m["macro_pr_auc"],
                 m["exact_match_accuracy"])
    with atomic_dir(out) as tmp:
        atomic_write_json(tmp / METRICS, result)
        plots.training_curves(RunDir(run_dir).history(), tmp / "training_curves.png", summary.get("best_epoch"))
        plots.per_class_f1(models, d.label_names, tmp / "per_class_f1.png")
        plots.pr_curves(test_y, probas, tmp / "pr_curves.png", d.label_names)
        atomic_write_text(tmp / MODEL_CARD, model_card(result, summary, RunDir(run_dir).thresholds()))
        uri = tracking_uri if tracking_uri else None
        run_id = tracking.resume_id(summary, uri)
        with tracking.run(uri, run_name="evaluate", parent_id=run_id) as active:
            for name, m in models.items():
                tracking.log_metrics(active, {f"test_{name}_{k}": m[k] for k in HEADLINE + ("macro_f1_at_0.5",)})
            tracking.log_artifacts(active, tmp, "evaluation")
            RunDir(run_dir).add_lineage(evaluate={"mlflow_run_id": active.info.run_id if active else None,
                                                  "metrics": str(Path(out) / METRICS)})
    return result


def selection_optimism(summary: dict, test_f1: float) -> dict:
    """How much the kept model's validation score (on which it was chosen and its thresholds tuned)
    overstates its test score: large when selection fits noise in the validation rows."""
    val = summary.get("val_macro_f1_tuned")
    return {"kept": summary.get("candidate"), "val_macro_f1_tuned": val, "test_macro_f1": test_f1,
            "optimism": None if val is None else round(float(val) - float(test_f1), 4)}


WEAK_F1 = 0.2  # the model card lists every supported topic below this test F1


def standing(models: dict) -> list[str]:
    """Where the candidate stands against the other models, on the same test rows."""
    c = models["candidate"]["macro_f1"]
    half = models["candidate"].get("macro_f1_at_0.5")
    return ([f"- vs {name}: macro-F1 {c:.4f} vs {m['macro_f1']:.4f} ({c - m['macro_f1']:+.4f})"
             for name, m in models.items() if name != "candidate"] or ["- no champion and no baseline were scored"]) \
        + ([f"- vs its own scores at the seed's fixed 0.5 thresholds: {c:.4f} vs {half:.4f} ({c - half:+.4f})"]
           if half is not None else [])


def _optimism(sel: dict | None) -> str:
    if not sel or sel.get("optimism") is None:
        return "not measured"
    return f"{sel['val_macro_f1_tuned']:.4f} - {sel['test_macro_f1']:.4f} = {sel['optimism']:+.4f}"


def model_card(result: dict, summary: dict, thresholds: dict) -> str:
    models = result["models"]
    rows = "\n".join(f"| {n} | " + " | ".join(f"{m[k]:.4f}" for k in HEADLINE + ("macro_f1_at_0.5",)) + " |"
                     for n, m in models.items())
    c = models["candidate"]
    weak = sorted((w for w in c["per_class"] if w["support"] > 0 and w["f1"] < WEAK_F1), key=lambda w: w["f1"])
    weak_rows = "\n".join(f"| {w['label']} | {w['f1']:.3f} | {w['precision']:.3f} | {w['recall']:.3f} | "
                          f"{w['support']} |" for w in weak)
    methods = thresholds.get("methods") or []
    n_global, n_shrunk = methods.count("global"), methods.count("shrunk")
    thr_text = ("fixed at 0.5" if not thresholds.get("tuned") else
                f"tuned on validation: {n_shrunk} topics their own F1-best threshold shrunk toward the global "
                f"{thresholds.get('global_threshold') or 0:.3f} by support, {n_global} with too few validation "
                "positives the global one")
    p = summary["params"]
    model_cfg = mdl.ModelConfig(**summary["model"])
    tried = summary.get("candidates") or []
    selection = ("; ".join(f"{t['name']} {t.get('val_macro_f1_crossfit') or t['val_macro_f1_tuned']:.4f}" for t in tried)
                 + f" -> kept {summary.get('candidate')} (cross-fitted thresholds; within "
                 f"{p.get('select_margin', 0):g} of the best, the ensemble, else the fewest parameters)") if len(tried) > 1 else "one candidate, no selection"
    unsupported = c.get("unsupported_labels", [])
    return f"""# Model card: social-tone topic classifier

- Run: `{result['candidate_run']}` (MLflow run {summary.get('mlflow_run_id') or 'not tracked'})
- Data version: `{result['data_version']}`; test rows: {result['test_rows']} (hash split with rare topics topped up, seed {result['split_seed']})
- Model: {mdl.describe(model_cfg)}
- Selection on validation macro-F1: {selection}
- Selection optimism (its validation macro-F1 minus its test macro-F1): {_optimism(result.get('selection'))}
- Training: batch {p['batch_size']}, lr {(summary.get('kept') or p)['lr']}, best epoch {summary['best_epoch']} of {summary['epochs_run']}; git {p['git_commit'][:12]}
- Thresholds: {thr_text}

## Where it stands (test macro-F1, same rows)

{chr(10).join(standing(models))}

## Test metrics

| model | {' | '.join(HEADLINE)} | macro_f1_at_0.5 |
|---|{'---|' * (len(HEADLINE) + 1)}
{rows}

Macro averages cover the {len(c['per_class']) - len(unsupported)} of {len(c['per_class'])} topics with test
positives. exact_match_accuracy is subset accuracy (every topic of a post right); label_accuracy
counts single (post, topic) bits, which is high for any model when most labels are 0.

## Weak topics: test F1 below {WEAK_F1} ({len(weak)} of {len(c['per_class']) - len(unsupported)})

""" + (f"""| topic | F1 | precision | recall | support |
|---|---|---|---|---|
{weak_rows}
""" if weak else "None.\n") + f"""
## Topics without test rows ({len(unsupported)})

{', '.join(unsupported) if unsupported else 'None.'}

## Intended use and limits

Topic tagging of posts from precomputed image and text embeddings, for monitoring topic
volumes. Topics with small support have unstable F1; see the per-class plot (sorted, with
support) and the PR curves of the weakest topics.
"""
