"""`tasks evaluate`: candidate vs champion vs logistic-regression baseline on the same test rows.

Writes metrics.json, plots and a markdown model card into --out (atomically), and logs them to
the candidate's MLflow run.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from tasks import baseline as bl
from tasks import dataset as ds
from tasks import metrics, model as mdl, plots, tracking
from tasks.fsutil import atomic_dir, atomic_write_json, atomic_write_text
from tasks.split import TEST, TRAIN, VAL
from tasks.rundir import HISTORY, METRICS, SUMMARY, RunDir

log = logging.getLogger(__name__)
HEADLINE = ("macro_f1", "micro_f1", "macro_precision", "macro_recall", "macro_pr_auc",
            "exact_match_accuracy", "label_accuracy")


def load_thresholds(run_dir: Path) -> tuple[list[str], np.ndarray]:
    t = RunDir(run_dir).thresholds()
    return t["label_names"], np.asarray(t["thresholds"], dtype=np.float32)


def _score_run(run_dir: Path, d: ds.Dataset, test) -> tuple[dict, np.ndarray]:
    names, thr = load_thresholds(run_dir)
    model = mdl.load(run_dir)
    if names != d.label_names or (model.cfg.img_dim, model.cfg.txt_dim) != (d.img_dim, d.txt_dim):
        raise ValueError(f"{run_dir}: model labels or dims do not match the evaluation data")
    proba = mdl.predict_proba(model, test[0], test[1])
    m = metrics.compute(test[2], proba, thr, names)
    m["macro_f1_at_0.5"] = metrics.macro_f1(test[2], proba, 0.5)
    return m, proba


def evaluate(run_dir: Path, data: list[Path], out: Path, champion: Path | None = None,
             with_baseline: bool = True, tracking_uri: str | None = None) -> dict:
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / SUMMARY).read_text())
    d = ds.load(data, seed=int(summary["params"]["split_seed"]))
    test = d.part(TEST)
    if len(test[2]) == 0:
        raise ValueError(f"{data}: the test split is empty")
    models, probas = {}, {}
    models["candidate"], probas["candidate"] = _score_run(run_dir, d, test)
    if champion is not None:
        try:
            models["champion"], probas["champion"] = _score_run(Path(champion), d, test)
        except (OSError, ValueError, KeyError) as e:
            log.warning("champion %s not comparable: %s", champion, e)
    if with_baseline:
        clf = bl.fit(*d.part(TRAIN))
        val = d.part(VAL)
        thr = metrics.tune_thresholds(val[2], bl.predict_proba(clf, val[0], val[1]))
        probas["baseline"] = bl.predict_proba(clf, test[0], test[1])
        models["baseline"] = metrics.compute(test[2], probas["baseline"], thr, d.label_names)
        models["baseline"]["macro_f1_at_0.5"] = metrics.macro_f1(test[2], probas["baseline"], 0.5)
    result = {"candidate_run": str(run_dir), "champion_run": str(champion) if "champion" in models else None,
              "data_version": d.version, "test_rows": int(len(test[2])), "split_seed": summary["params"]["split_seed"],
              "models": models, "seconds": time.perf_counter() - t0}
    for name, m in models.items():
        log.info("%-9s macro-F1 %.4f (at 0.5: %.4f) micro-F1 %.4f macro PR-AUC %.4f exact-match %.4f",
                 name, m["macro_f1"], m["macro_f1_at_0.5"], m["micro_f1"], m["macro_pr_auc"],
                 m["exact_match_accuracy"])
    with atomic_dir(out) as tmp:
        atomic_write_json(tmp / METRICS, result)
        history = json.loads((run_dir / HISTORY).read_text())
        plots.training_curves(history, tmp / "training_curves.png")
        plots.per_class_f1(models, d.label_names, tmp / "per_class_f1.png")
        plots.pr_curves(test[2], probas, tmp / "pr_curves.png")
        atomic_write_text(tmp / "model_card.md", model_card(result, summary))
        uri = tracking_uri if tracking_uri else None
        run_id = tracking.resume_id(summary, uri)
        with tracking.run(uri, run_name="evaluate", parent_id=run_id) as active:
            for name, m in models.items():
                tracking.log_metrics(active, {f"test_{name}_{k}": m[k] for k in HEADLINE + ("macro_f1_at_0.5",)})
            tracking.log_artifacts(active, tmp, "evaluation")
    return result


def model_card(result: dict, summary: dict) -> str:
    models = result["models"]
    rows = "\n".join(f"| {n} | " + " | ".join(f"{m[k]:.4f}" for k in HEADLINE + ("macro_f1_at_0.5",)) + " |"
                     for n, m in models.items())
    c = models["candidate"]
    worst = sorted(c["per_class"], key=lambda x: x["f1"])[:5]
    p, mc = summary["params"], summary["model"]
    return f"""# Model card: social-tone topic classifier

- Run: `{result['candidate_run']}` (MLflow run {summary.get('mlflow_run_id') or 'not tracked'})
- Data version: `{result['data_version']}`; test rows: {result['test_rows']} (hash split, seed {result['split_seed']})
- Model: concat(img {mc['img_dim']}, txt {mc['txt_dim']}) -> Linear({mc['hidden']}) -> ReLU -> Dropout({mc['dropout']})
  -> Linear({mc['n_labels']})
- Training: batch {p['batch_size']}, lr {p['lr']}, best epoch {summary['best_epoch']} of {summary['epochs_run']},
  per-class thresholds {'tuned on validation' if p['tune_thresholds'] else 'fixed at 0.5'}; git {p['git_commit'][:12]}

## Test metrics

| model | {' | '.join(HEADLINE)} | macro_f1_at_0.5 |
|---|{'---|' * (len(HEADLINE) + 1)}
{rows}

exact_match_accuracy is subset accuracy (every topic of a post right); label_accuracy counts
single (post, topic) bits and is high for any model because most labels are 0.

## Weakest topics (candidate)

| topic | F1 | precision | recall | support |
|---|---|---|---|---|
""" + "\n".join(f"| {w['label']} | {w['f1']:.3f} | {w['precision']:.3f} | {w['recall']:.3f} | {w['support']} |"
                for w in worst) + """

## Intended use and limits

Topic tagging of social-media posts from precomputed image and text embeddings, for
monitoring topic volumes. Labels are hashtag clusters, so they are noisy and imbalanced;
topics with small support have unstable F1.
"""
