"""A real tritonserver (PyPI's nvidia-pytriton build, CPU) serving a published version."""
import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient

from tasks import dataset as ds
from tasks import synth
from tasks.export_onnx import export_onnx
from tasks.split import TEST
from tasks.train import TrainConfig, train

from tasks.triton import repo as trepo
from tasks.triton.server import TritonServer


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    synth.write_labeled(root / "d", "d", rows=6000, seed=4)
    train([root / "d"], root / "run", TrainConfig(max_epochs=2), tracking_uri="none")
    export_onnx(root / "run", [root / "d"], root / "run" / "model.onnx", tracking_uri="none")
    return root


def _infer(client, img, txt, model="social_tone"):
    inputs = [grpcclient.InferInput("img_emb", img.shape, "FP32"), grpcclient.InferInput("txt_emb", txt.shape, "FP32")]
    inputs[0].set_data_from_numpy(img)
    inputs[1].set_data_from_numpy(txt)
    return client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput(n) for n in ("logits", "probs", "labels")])


def test_publish_v1_and_serve_it(exported, tmp_path):
    root = exported
    v = trepo.publish(root / "run" / "model.onnx", root / "run", tmp_path / "repo", execution_env=sys.prefix)
    assert v == 1 and trepo.versions(tmp_path / "repo" / "social_tone") == [1]
    assert sorted(p.name for p in (tmp_path / "repo" / "social_tone" / "1").iterdir()) == \
        ["model.onnx", "model.py", "thresholds.json"]
    with TritonServer(tmp_path / "repo", tmp_path / "triton") as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        client.load_model("social_tone")
        assert client.is_model_ready("social_tone", "1")
        d = ds.load([root / "d"])
        img, txt, _ = d.part(TEST)
        img, txt = np.ascontiguousarray(img[:256]), np.ascontiguousarray(txt[:256])
        r = _infer(client, img, txt)
        want = ort.InferenceSession(str(root / "run" / "model.onnx")).run(["logits"], {"img_emb": img, "txt_emb": txt})[0]
        assert np.abs(r.as_numpy("logits") - want).max() <= 1e-5
        thr = np.asarray(json.loads((root / "run" / "thresholds.json").read_text())["thresholds"])
        np.testing.assert_array_equal(r.as_numpy("labels"), 1 / (1 + np.exp(-want)) >= thr)
    assert server.proc.poll() is not None, "server stopped"


def test_config_and_pruning(exported, tmp_path):
    root = exported
    for _ in range(4):
        trepo.publish(root / "run" / "model.onnx", root / "run", tmp_path / "repo", keep=3)
    model_dir = tmp_path / "repo" / "social_tone"
    assert trepo.versions(model_dir) == [2, 3, 4]
    cfg = (model_dir / "config.pbtxt").read_text()
    assert 'backend: "python"' in cfg and "max_batch_size: 4096" in cfg and "dims: [ 768 ]" in cfg
    assert (model_dir / "labels.txt").read_text().splitlines()[0] == "topic_00"
    assert 'backend: "tensorrt"' in trepo.render_config("m", "tensorrt_plan", 512, 768, 50)
