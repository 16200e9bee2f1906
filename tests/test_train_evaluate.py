"""Training and evaluation on synthetic WarCov-like data, tracked in a real sqlite MLflow store."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tasks import contract as c
from tasks import dataset as ds
from tasks import gate, metrics, model as mdl, synth
from tasks.evaluate import evaluate
from tasks.rundir import RunDir
from tasks.train import pick
from tasks.split import TEST
from tasks.train import TrainConfig, train
from tests.conftest import make_drop


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    synth.write_labeled(root / "drops" / "d1", "d1", rows=15_000, seed=42)
    uri = f"sqlite:///{root}/mlflow.db"
    # two candidates (the default trains one, `strong`): the selection, the ensemble, the run dir
    summary = train([root / "drops"], root / "run", TrainConfig(max_epochs=8, candidates="mlp,linear"),
                    tracking_uri=uri, run_name="t")
    return root, uri, summary


def test_run_dir_holds_a_pickle_free_checkpoint_thresholds_and_history(trained):
    root, _, summary = trained
    run = root / "run"
    state = torch.load(run / mdl.WEIGHTS, weights_only=True)
    # of the two candidates and their ensemble (the mean probability, the default's `ensemble`),
    # those within select_margin of the best on cross-fitted validation macro-F1, the smallest is kept
    tried = summary["candidates"]
    assert [t["name"] for t in tried] == ["mlp", "linear", "ensemble"]
    want = pick([t["val_macro_f1_crossfit"] for t in tried], [t["parameters"] for t in tried],
                summary["params"]["select_margin"])
    assert summary["candidate"] == tried[want]["name"]
    norm = "members.0.norm" if summary["candidate"] == "ensemble" else "norm"
    assert state[f"{norm}.mean"].shape == state[f"{norm}.scale"].shape == (512 + 768,), "inputs standardized"
    if summary["candidate"] == "mlp":
        assert set(state) == {"norm.mean", "norm.scale", "net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias"}
        assert state["net.0.weight"].shape == (256, 512 + 768) and state["net.3.weight"].shape == (50, 256)
    elif summary["candidate"] == "linear":
        assert set(state) == {"norm.mean", "norm.scale", "net.weight", "net.bias"}
    else:
        assert {k.split(".")[1] for k in state} == {"0", "1"} and len(state) == 10
    thr = json.loads((run / "thresholds.json").read_text())
    assert len(thr["thresholds"]) == 50 and thr["label_names"][0] == "ceasefire_talks" and thr["tuned"]
    history = json.loads((run / "history.json").read_text())
    assert len(history) == summary["epochs_run"] <= 8
    assert {"epoch", "train_loss", "val_loss", "val_macro_f1_at_0.5", "val_macro_f1_tuned", "lr"} <= set(history[0])
    # the kept weights are those of the epoch with the best tuned validation macro-F1
    best = max(history, key=lambda h: h["val_macro_f1_tuned"])
    assert summary["best_epoch"] == best["epoch"] and summary["selected_on"] == "f1"
    assert set(thr["methods"]) <= {"shrunk", "global"} and len(thr["val_support"]) == 50
    assert not list(root.glob(".run.*")), "no temp dirs left behind"


def test_tuned_thresholds_beat_fixed_half_on_the_test_split(trained):
    root, _, _ = trained
    d = ds.load([root / "drops"])
    img, txt, y = d.part(TEST)
    proba = mdl.predict_proba(mdl.load(root / "run"), img, txt)
    thr = np.asarray(json.loads((root / "run" / "thresholds.json").read_text())["thresholds"])
    tuned, fixed = metrics.macro_f1(y, proba, thr), metrics.macro_f1(y, proba, 0.5)
    assert tuned > fixed + 0.05, (tuned, fixed)


def test_training_is_logged_to_mlflow(trained):
    from mlflow.tracking import MlflowClient
    _, uri, summary = trained
    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow_run_id"])
    p = run.data.params
    assert p["batch_size"] == "512" and p["data_version"] == summary["data_version"] and "git_commit" in p
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == summary["epochs_run"]
    assert run.data.metrics["val_macro_f1_tuned"] == pytest.approx(summary["val_macro_f1_tuned"])
    assert "model/model.pt" in [a.path for a in client.list_artifacts(run.info.run_id, "model")]


def test_evaluate_compares_candidate_champion_and_baseline(trained, tmp_path):
    root, uri, summary = trained
    r = evaluate(root / "run", [root / "drops"], tmp_path / "eval", champion=root / "run", tracking_uri=uri)
    assert set(r["models"]) == {"candidate", "champion", "baseline"}
    cand = r["models"]["candidate"]
    strip = lambda m: {**m, "per_class": [{k: v for k, v in c.items() if k in ("label", "precision", "recall", "f1",  # noqa: E731
                                                                             "support")} for c in m["per_class"]]}
    assert strip(cand) == strip(r["models"]["champion"]), "same model, same rows -> same metrics"
    assert cand["macro_f1"] > r["models"]["baseline"]["macro_f1"]
    assert 0 < cand["exact_match_accuracy"] < cand["label_accuracy"] < 1
    assert len(cand["per_class"]) == 50 and sum(x["support"] for x in cand["per_class"]) > 0
    thr = json.loads((root / "run" / "thresholds.json").read_text())
    assert [(x["threshold"], x["threshold_method"], x["val_support"]) for x in cand["per_class"]] == \
        list(zip(thr["thresholds"], thr["methods"], thr["val_support"])), "each topic's threshold, method, val support"
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["test_rows"] == r["test_rows"] > 1500
    for png in ("training_curves.png", "per_class_f1.png", "pr_curves.png"):
        assert (tmp_path / "eval" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert "| candidate |" in card and "| baseline |" in card and "## Weak topics: test F1 below 0.2" in card
    assert "- vs baseline: macro-F1" in card and "## Topics without test rows (0)" in card
    kept = summary["candidate"]
    assert f"-> kept {kept}" in card and ("Linear(256) -> ReLU" in card) == (kept == "mlp"), "the kept model's layers"
    assert "at the seed's fixed 0.5 thresholds" in card
    # every supported topic under 0.2 F1 is listed with its support, none other
    weak = [w for w in cand["per_class"] if w["support"] and w["f1"] < 0.2]
    assert all(f"| {w['label']} | {w['f1']:.3f} |" in card for w in weak)
    assert not any(f"| {w['label']} | {w['f1']:.3f} |" in card for w in cand["per_class"] if w["f1"] >= 0.2)
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    train_run = client.get_run(summary["mlflow_run_id"])
    assert train_run.info.run_name == "t", "evaluate does not rename the training run"
    children = client.search_runs([train_run.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{summary['mlflow_run_id']}'")
    assert [r.info.run_name for r in children] == ["evaluate"]
    assert children[0].data.metrics["test_candidate_macro_f1"] == pytest.approx(cand["macro_f1"])


def test_failed_training_writes_nothing(tmp_path):
    make_drop(tmp_path / "u", labeled=False)
    with pytest.raises(c.ContractError, match="unlabeled drop cannot be used for training"):
        train([tmp_path / "u"], tmp_path / "run", TrainConfig(max_epochs=1), tracking_uri="none")
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(ValueError, match="unknown hyper-parameters: \\['epochz'\\]"):
        TrainConfig.from_overrides({"epochz": 3})


def test_cli_end_to_end_with_plain_epoch_logs(tmp_path):
    def run(*args):
        p = subprocess.run([sys.executable, "-m", "tasks", *map(str, args)], capture_output=True, text=True)
        return p.returncode, json.loads(p.stdout.strip().splitlines()[-1]), p.stderr

    rc, out, _ = run("synth", "--out", tmp_path / "d", "--rows", 4000)
    assert rc == 0 and out["rows"] == 4000
    cfg = tmp_path / "hp.json"
    cfg.write_text(json.dumps({"max_epochs": 3, "hidden": 64}))
    rc, out, err = run("train", "--data", tmp_path / "d", "--out", tmp_path / "run", "--config", cfg,
                       "--lr", "0.003", "--tracking-uri", "none")
    assert rc == 0 and out["model_dir"] == str(tmp_path / "run"), err
    assert "epoch 1/3 train_loss=" in err and "\r" not in err, "one plain line per epoch"
    s = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert (s["params"]["hidden"], s["params"]["lr"], s["params"]["max_epochs"]) == (64, 0.003, 3)
    rc, out, _ = run("evaluate", "--model-dir", tmp_path / "run", "--data", tmp_path / "d", "--out", tmp_path / "ev",
                     "--no-baseline", "--tracking-uri", "none")
    assert rc == 0 and out["candidate_macro_f1"] > 0 and "baseline_macro_f1" not in out
    rc, out, err = run("train", "--data", tmp_path / "nope", "--out", tmp_path / "r2")
    assert rc == 3 and f"{tmp_path / 'nope'}: neither a drop nor a folder of drops" in err


def test_model_card_lists_weak_and_unsupported_topics_and_the_gate_says_why(tmp_path):
    """A label set where one topic never occurs in the data and one is nearly noise."""
    rng = np.random.default_rng(0)
    n, names = 3000, ["common", "noisy", "absent"]
    img = rng.standard_normal((n, 8)).astype(np.float32)
    y = np.zeros((n, 3), np.uint8)
    y[:, 0] = img[:, 0] > 0.5
    y[:, 1] = rng.random(n) < 0.05  # unrelated to the inputs
    c.write_drop(tmp_path / "d", "d", img, rng.standard_normal((n, 6)).astype(np.float32),
                 np.array([f"p{i}" for i in range(n)]), labels=y, label_names=names, source="test")
    train([tmp_path / "d"], tmp_path / "run", TrainConfig(max_epochs=3, hidden=16), tracking_uri="none")
    r = evaluate(tmp_path / "run", [tmp_path / "d"], tmp_path / "eval", tracking_uri="none")
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert r["models"]["candidate"]["unsupported_labels"] == ["absent"]
    val = RunDir(tmp_path / "run").summary()["val_macro_f1_tuned"]
    sel = json.loads((tmp_path / "eval" / "metrics.json").read_text())["selection"]
    assert sel["optimism"] == round(val - r["models"]["candidate"]["macro_f1"], 4)
    assert f"Selection optimism (its validation macro-F1 minus its test macro-F1): {val:.4f} - " in card
    assert "## Topics without test rows (1)\n\nabsent" in card and "Macro averages cover the 2 of 3 topics" in card
    noisy = next(w for w in r["models"]["candidate"]["per_class"] if w["label"] == "noisy")
    assert noisy["f1"] < 0.2 and f"| noisy | {noisy['f1']:.3f} |" in card and "| common |" not in card

    # the gate: a candidate below the LogReg baseline is refused, force_promote overrides it
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    m["models"]["baseline"]["macro_f1"] = m["models"]["candidate"]["macro_f1"] + 0.05
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(m))
    b = gate.gate(tmp_path / "eval" / "metrics.json")
    assert not b["blessed"] and any("< LogReg baseline" in x for x in b["reasons"])
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert "## Gate: not blessed" in card and "< LogReg baseline" in card
    b = gate.gate(tmp_path / "eval" / "metrics.json", force=True)
    assert b["blessed"] and not b["passed"]
    card = (tmp_path / "eval" / "model_card.md").read_text()
    assert card.count("## Gate:") == 1 and "## Gate: blessed, forced by force_promote" in card
    p = subprocess.run([sys.executable, "-m", "tasks", "gate", "--metrics", tmp_path / "eval" / "metrics.json"],
                       capture_output=True, text=True)
    assert p.returncode == 5 and "LogReg baseline" in p.stderr


def _metrics(cand, champion=None, baseline=None):
    models = {"candidate": {"macro_f1": cand}}
    if champion is not None:
        models["champion"] = {"macro_f1": champion}
    if baseline is not None:
        models["baseline"] = {"macro_f1": baseline}
    return {"models": models}


@pytest.mark.parametrize("cand, champion, baseline, blessed", [
    (0.50, None, None, True),        # first model: only the floor
    (0.09, None, None, False),       # below the floor
    (0.10, None, None, True),        # at the floor
    (0.50, None, 0.50, True),        # level with the baseline
    (0.499, None, 0.50, False),      # below the baseline on test: never blessed, whatever the tolerance
    (0.491, 0.50, None, True),       # within the champion tolerance
    (0.489, 0.50, None, False),      # outside it
    (0.495, 0.50, 0.49, True),       # within tolerance of the champion, above the baseline
    (0.495, 0.50, 0.496, False),     # within tolerance of the champion, below the baseline
])
def test_bless_at_each_boundary(cand, champion, baseline, blessed):
    b = gate.bless(_metrics(cand, champion, baseline), tolerance=0.01, floor=0.1)
    assert b["blessed"] is blessed and b["passed"] is blessed
    forced = gate.bless(_metrics(cand, champion, baseline), tolerance=0.01, floor=0.1, force=True)
    assert forced["blessed"] and forced["passed"] is blessed


def test_selection_optimism_is_val_minus_test():
    from tasks.evaluate import selection_optimism
    s = selection_optimism({"candidate": "resmlp", "val_macro_f1_tuned": 0.384}, 0.352)
    assert s == {"kept": "resmlp", "val_macro_f1_tuned": 0.384, "test_macro_f1": 0.352, "optimism": 0.032}
    assert selection_optimism({}, 0.3)["optimism"] is None
