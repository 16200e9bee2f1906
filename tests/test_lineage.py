"""One lineage record per model, every hop linked, and the exact training rows restorable."""
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks import dataset as ds
from tasks import synth
from tasks.evaluate import evaluate
from tasks.export_onnx import export_onnx
from tasks.ingest import ingest
from tasks.promote import promote
from tasks.rundir import RunDir
from tasks.split import TRAIN
from tasks.train import TrainConfig, train
from tasks.triton import repo as trepo


def train_rows_digest(d: ds.Dataset) -> str:
    idx = d.index(TRAIN)
    h = hashlib.sha256(d.read(idx).tobytes())
    h.update(d.labels[idx].tobytes())
    h.update("\n".join(d.ids[idx]).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Two drops ingested one after the other; a model trained after each."""
    root = tmp_path_factory.mktemp("lineage")
    uri = f"sqlite:///{root}/mlflow.db"
    data = root / "dataset"
    runs = {}
    for k, seed in ((1, 11), (2, 12)):
        synth.write_labeled(root / "in" / f"drop-{k}", f"drop-{k}", rows=1500, seed=seed, id_start=k * 10_000,
                            world_seed=3)
        ingest(root / "in" / f"drop-{k}", data, remote=root / "remote")
        runs[k] = root / f"run{k}"
        train([data / "drops"], runs[k], TrainConfig(max_epochs=1), tracking_uri=uri, run_name=f"run{k}")
    return root, uri, runs


def test_lineage_links_every_hop(history, tmp_path):
    root, uri, runs = history
    run = runs[2]
    evaluate(run, [root / "dataset" / "drops"], tmp_path / "eval", tracking_uri=uri)
    export_onnx(run, tracking_uri=uri)
    version = trepo.publish(run, tmp_path / "repo", execution_env=sys.prefix)["version"]
    promote(run, tmp_path / "champion.json", version=version, tracking_uri=uri, metrics_json=tmp_path / "eval" /
            "metrics.json")
    lin = RunDir(run).lineage()
    summary = RunDir(run).summary()
    # drops and their manifests -> data version -> DVC md5 (the version drops.dvc names now)
    assert [d["id"] for d in lin["data"]["drops"]] == ["drop-1", "drop-2"]
    assert lin["data"]["drops"][1]["manifest_sha256"] == hashlib.sha256(
        (root / "dataset" / "drops" / "drop-2" / "manifest.json").read_bytes()).hexdigest()
    assert lin["data"]["version"] == summary["data_version"]
    import yaml
    dvc = yaml.safe_load((root / "dataset" / "drops.dvc").read_text())["outs"][0]["md5"]
    assert lin["data"]["dvc_md5"] == dvc and dvc.endswith(".dir")
    # -> MLflow runs named for their step, all children of the training run
    from mlflow import MlflowClient
    client = MlflowClient(uri)
    assert lin["train"]["mlflow_run_id"] == summary["mlflow_run_id"]
    for step, name in (("evaluate", "evaluate"), ("export", "export-onnx")):
        r = client.get_run(lin[step]["mlflow_run_id"])
        assert r.info.run_name == name and r.data.tags["mlflow.parentRunId"] == summary["mlflow_run_id"]
    trained = client.get_run(summary["mlflow_run_id"]).data
    assert trained.tags["dvc_md5"] == dvc
    # the summary's figures as metrics and its words as tags (selected_on was once dropped)
    assert trained.tags["selected_on"] == summary["selected_on"] == "f1"
    assert trained.metrics["val_macro_f1_tuned"] == summary["val_macro_f1_tuned"] and "train_seconds" in trained.metrics
    # -> ONNX sha256 -> Triton version -> champion (pointer and alias agree)
    assert lin["export"]["onnx_sha256"] == hashlib.sha256(RunDir(run).onnx.read_bytes()).hexdigest()
    assert lin["triton"]["version"] == version == 1
    pointer = json.loads((tmp_path / "champion.json").read_text())
    assert pointer["lineage"] == lin and lin["champion"]["alias"] == "champion"
    mv = client.get_model_version_by_alias("social_tone", "champion")
    assert int(mv.version) == lin["champion"]["registry_version"]
    assert mv.tags["lineage.onnx_sha256"] == lin["export"]["onnx_sha256"]
    assert mv.tags["lineage.dvc_md5"] == dvc and mv.tags["lineage.drops"] == "drop-1,drop-2"


def test_data_checkout_restores_the_exact_training_rows(history, tmp_path):
    root, _, runs = history
    before = ds.load([root / "in" / "drop-1"])  # what run1 was trained on: drop-1 alone
    lin1 = RunDir(runs[1]).lineage()["data"]
    assert lin1["dvc_md5"] != RunDir(runs[2]).lineage()["data"]["dvc_md5"]
    p = subprocess.run([sys.executable, "-m", "tasks", "data", "checkout", "--model-dir", str(runs[1]), "--dataset",
                        str(root / "dataset"), "--out", str(tmp_path / "restored")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["drops"] == ["drop-1"] and r["data_version"] == lin1["version"]
    restored = ds.load([tmp_path / "restored"])
    assert sorted(x.name for x in (tmp_path / "restored").iterdir()) == ["drop-1"]
    assert restored.version == lin1["version"] == RunDir(runs[1]).summary()["data_version"]
    assert train_rows_digest(restored) == train_rows_digest(before)
    np.testing.assert_array_equal(restored.ids, before.ids)


def test_a_window_of_the_latest_drops_is_restored_alone(history, tmp_path):
    root, _, _ = history
    train([root / "dataset" / "drops"], tmp_path / "run", TrainConfig(max_epochs=1, window_drops=1),
          tracking_uri="none")
    lin = RunDir(tmp_path / "run").lineage()["data"]
    assert [d["id"] for d in lin["drops"]] == ["drop-2"] and lin["dvc_md5"]
    from tasks.lineage import checkout
    r = checkout(tmp_path / "run", root / "dataset", tmp_path / "restored")
    assert r["drops"] == ["drop-2"] and ds.load([tmp_path / "restored"]).version == lin["version"]
    assert lin["version"] == ds.load([root / "in" / "drop-2"]).version


def test_checkout_refuses_a_model_without_a_dvc_version(tmp_path):
    synth.write_labeled(tmp_path / "d", "d", rows=300, seed=1)
    train([tmp_path / "d"], tmp_path / "run", TrainConfig(max_epochs=1), tracking_uri="none")
    assert RunDir(tmp_path / "run").lineage()["data"]["dvc_md5"] is None  # not a DVC dataset folder
    p = subprocess.run([sys.executable, "-m", "tasks", "data", "checkout", "--model-dir", str(tmp_path / "run"),
                        "--dataset", str(tmp_path), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert p.returncode == 3 and "no DVC version recorded" in p.stderr and not (tmp_path / "out").exists()


def test_task_code_reads_the_environment_only_through_tasks_env():
    """One place for settings: tasks/env.py declares every variable (tests/airflow checks the
    factory forwards them). Exempt: Triton's model code (it runs inside Triton, without this
    package), the server (it copies the environment whole for tritonserver) and ingest (it
    sets DVC's own variable for DVC)."""
    root = Path(__file__).parent.parent / "tasks"
    exempt = {"env.py", "triton/python_model.py", "triton/server.py", "ingest.py"}
    readers = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if re.search(r"os\.environ|os\.getenv", p.read_text()) and str(p.relative_to(root)) not in exempt]
    assert readers == []
    from tasks import env
    names = set(re.findall(r'\benv\.get\("([A-Z_]+)"\)', "".join(p.read_text() for p in root.rglob("*.py"))))
    assert names <= set(env.VARS), names - set(env.VARS)
