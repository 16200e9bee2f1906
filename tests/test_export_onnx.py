"""ONNX export: parity with PyTorch on real test rows, refusal on mismatch, MLflow model."""
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tasks import dataset as ds
from tasks import model as mdl, synth
from tasks.export_onnx import IR_VERSION, OPSET, ParityError, check_parity, export_onnx, pin_ir
from tasks.rundir import RunDir
from tasks.split import TEST
from tasks.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    synth.write_labeled(root / "d", "d", rows=8000, seed=3)
    uri = f"sqlite:///{root}/mlflow.db"
    train([root / "d"], root / "run", TrainConfig(max_epochs=2), tracking_uri=uri)
    return root, uri


def test_export_matches_pytorch_on_real_test_rows(run):
    root, uri = run
    r = export_onnx(root / "run", tracking_uri=uri)
    assert r["ok"] and r["rows"] == 1000 and r["rows_from"] == "test" and r["max_abs_diff"] <= 1e-4
    report = json.loads((root / "run" / "onnx_parity.json").read_text())
    assert report["label_mismatch_rows"] == 0 and report["opset"] == OPSET
    import onnx
    graph = onnx.load(str(root / "run" / "model.onnx"))
    # what Triton 24.10's ONNX Runtime (1.19) reads, whatever this torch/onnx would emit
    assert graph.ir_version == IR_VERSION == 10 and [(o.domain, o.version) for o in graph.opset_import] == [("", 18)]

    sess = ort.InferenceSession(str(root / "run" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in sess.get_inputs()] == [("img_emb", 512), ("txt_emb", 768)]
    assert (sess.get_outputs()[0].name, sess.get_outputs()[0].shape[1]) == ("logits", 50)
    d = ds.load([root / "d"])
    img, txt, _ = d.part(TEST)
    model = mdl.load(root / "run")
    for b in (1, 7, 1024):  # dynamic batch
        got = sess.run(["logits"], {"img_emb": np.ascontiguousarray(img[:b]), "txt_emb": np.ascontiguousarray(txt[:b])})[0]
        want = model(torch.from_numpy(np.ascontiguousarray(img[:b])), torch.from_numpy(np.ascontiguousarray(txt[:b])))
        assert got.shape == (b, 50) and np.abs(got - want.detach().numpy()).max() <= 1e-4

    from mlflow.tracking import MlflowClient
    summary = json.loads((root / "run" / "train_summary.json").read_text())
    client = MlflowClient(uri)
    models = client.search_logged_models(experiment_ids=[client.get_run(summary["mlflow_run_id"]).info.experiment_id])
    onnx_model = [m for m in models if m.name == "onnx"]
    # logged by a child run named for the step, under the training run
    export_run = client.get_run(onnx_model[0].source_run_id)
    assert export_run.info.run_name == "export-onnx"
    assert export_run.data.tags["mlflow.parentRunId"] == summary["mlflow_run_id"]
    assert json.loads((root / "run" / "mlflow_model.json").read_text())["model_uri"] == onnx_model[0].model_uri
    import mlflow
    info = mlflow.models.get_model_info(onnx_model[0].model_uri)
    assert {i["name"] for i in info.signature.inputs.to_dict()} == {"img_emb", "txt_emb"}


def test_a_graph_emitted_at_a_newer_ir_is_written_at_the_pinned_one(run, tmp_path):
    import onnx
    root, _ = run
    m = onnx.load(str(root / "run" / "model.onnx"))
    m.ir_version = 11  # as onnx 1.18+ writes by default
    onnx.save(m, str(tmp_path / "m.onnx"))
    assert pin_ir(tmp_path / "m.onnx") == 11
    pinned = onnx.load(str(tmp_path / "m.onnx"))
    assert pinned.ir_version == 10
    onnx.checker.check_model(pinned, full_check=True)
    assert pin_ir(tmp_path / "m.onnx") == 10  # already there: left as it is


def test_parity_catches_a_graph_that_drifts(run, tmp_path):
    root, _ = run
    model = mdl.load(root / "run")
    from tasks.export_onnx import export
    export(model, tmp_path / "m.onnx")
    with torch.no_grad():
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]  # whichever candidate was kept
        last.bias += 1e-3  # the graph no longer matches the model it claims to be
    img, txt, _, _ = RunDir(root / "run").check_rows()
    r = check_parity(tmp_path / "m.onnx", model, np.full(50, 0.5, np.float32), img, txt)
    assert not r["ok"] and r["max_abs_diff"] > 5e-4


def test_failed_parity_writes_no_model_and_exits_4(run, tmp_path, monkeypatch):
    root, _ = run
    import tasks.export_onnx as ex
    real = ex.check_parity
    monkeypatch.setattr(ex, "check_parity", lambda *a, **k: {**real(*a, **k), "ok": False})
    import shutil
    shutil.copytree(root / "run", tmp_path / "run", ignore=shutil.ignore_patterns("model.onnx", "onnx_parity.json"))
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(ParityError, match="not written"):
        export_onnx(tmp_path / "run", tracking_uri="none")
    assert json.loads((tmp_path / "run" / "onnx_parity.json").read_text())["ok"] is False
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(before + ["onnx_parity.json"])


def test_cli_exit_code_on_parity_failure(run, tmp_path):
    root, _ = run
    p = subprocess.run([sys.executable, "-m", "tasks", "export-onnx", "--model-dir", str(root / "run"), "--out", str(tmp_path / "m.onnx"), "--atol", "-1", "--tracking-uri", "none"],
                       capture_output=True, text=True)
    assert p.returncode == 4 and "ONNX parity failed" in p.stderr and not (tmp_path / "m.onnx").exists()


def test_label_flips_count_only_outside_the_tolerance_band(tmp_path):
    """A flip where the logit sits within atol of the threshold is float noise; one farther away fails."""
    from tasks.export_onnx import INPUTS
    import onnx
    from onnx import helper, TensorProto
    # a graph computing logits = img[:, :1] + txt[:, :1] * 0 + delta, against a model returning img[:, :1]
    class Tiny(torch.nn.Module):
        def forward(self, img_emb, txt_emb):
            return img_emb[:, :1] + 0 * txt_emb[:, :1]
    def graph(delta, path):
        nodes = [helper.make_node("Slice", ["img_emb", "s", "e", "ax"], ["a"]),
                 helper.make_node("Add", ["a", "d"], ["logits"])]
        init = [helper.make_tensor("s", TensorProto.INT64, [1], [0]), helper.make_tensor("e", TensorProto.INT64, [1], [1]),
                helper.make_tensor("ax", TensorProto.INT64, [1], [1]), helper.make_tensor("d", TensorProto.FLOAT, [1], [delta])]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", k])
                                           for n, k in zip(INPUTS, (1, 1))],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1])], init)
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)
    img = np.array([[0.0], [-3e-5], [2.0]], np.float32)   # logits at, just under, and far from the threshold 0.5
    txt = np.zeros((3, 1), np.float32)
    graph(5e-5, tmp_path / "near.onnx")
    r = check_parity(tmp_path / "near.onnx", Tiny(), np.array([0.5], np.float32), img, txt)
    assert r["ok"] and r["borderline_flips"] == 1 and r["label_mismatch_rows"] == 0
    r = check_parity(tmp_path / "near.onnx", Tiny(), np.array([0.5], np.float32), img + 1e-3, txt, atol=1e-5)
    assert not r["ok"]


def test_light_steps_import_neither_lightning_nor_matplotlib():
    """promote, gate, publish and export name run-dir files through tasks.rundir (stdlib only),
    not by importing the module that writes them."""
    code = ("import sys, tasks.promote, tasks.gate, tasks.export_onnx, tasks.triton.repo, tasks.cli\n"
            "print(sorted(m for m in ('lightning', 'matplotlib', 'sklearn') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"
    p = subprocess.run([sys.executable, "-c", "import sys, tasks.promote, tasks.gate, tasks.triton.repo; "
                        "print('torch' in sys.modules)"], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "False"
