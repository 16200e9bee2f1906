"""Closed Triton: the model-repository API (load, unload, upload = code execution), shared
memory, trace and logging answer only the admin secret; inference and health stay open."""
import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tasks.triton import repo as trepo
from tasks.triton.client import ADMIN_HEADER, ADMIN_SECRET_ENV, TritonClient, TritonRefused
from tasks.triton.reload import reload
from tasks.triton.server import TritonServer
from tests.conftest import trained_run

MODEL = "social_tone"


def evil(marker) -> bytes:
    """A Python model whose import alone writes `marker`: code execution if Triton loads it."""
    return f"open({str(marker)!r}, 'w').write('pwned')\n".encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("closed")
    trained_run(root, rows=3000, seed=4)
    trepo.publish(root / "run", root / "repo", execution_env=sys.prefix)
    with TritonServer(root / "repo", root / "triton") as server:
        reload(root / "repo", MODEL, url=server.grpc_url, run_dir=root / "run")
        yield root, server


def refused(fn, *args, **kwargs) -> str:
    with pytest.raises(InferenceServerException) as e:
        fn(*args, **kwargs)
    assert "restricted" in str(e.value)
    return str(e.value)


def test_grpc_clients_without_the_secret_cannot_load_unload_or_upload(served, tmp_path):
    root, server = served
    assert server.admin_secret == os.environ[ADMIN_SECRET_ENV]
    pwned = tmp_path / "pwned"
    c = grpcclient.InferenceServerClient(server.grpc_url)
    config = json.dumps({"backend": "python", "max_batch_size": 0, "parameters": {}})
    for headers in (None, {f"triton-grpc-protocol-{ADMIN_HEADER}": "wrong"}, {ADMIN_HEADER: server.admin_secret}):
        refused(c.load_model, "evil", config=config, files={"file:1/model.py": evil(pwned)}, headers=headers)
        refused(c.unload_model, MODEL, headers=headers)
        refused(c.load_model, MODEL, headers=headers)
        refused(c.get_model_repository_index, headers=headers)
        refused(c.register_system_shared_memory, "x", "/social-tone-x", 64, headers=headers)
        refused(c.update_log_settings, {"log_file": str(tmp_path / "log")}, headers=headers)
        refused(c.update_trace_settings, settings={"trace_file": str(tmp_path / "trace")}, headers=headers)
    assert not pwned.exists() and not (root / "repo" / "evil").exists()
    # what stays open: health, metadata, config, inference
    assert c.is_server_ready() and c.is_model_ready(MODEL)
    assert c.get_model_config(MODEL, as_json=True)["config"]["name"] == MODEL
    with TritonClient(server.grpc_url, secret="wrong") as wrong:
        p = wrong.infer(np.zeros((2, 512), np.float32), np.zeros((2, 768), np.float32))
        assert p.logits.shape == (2, 50) and p.version == "1"
        with pytest.raises(TritonRefused, match="wrong admin secret"):
            wrong.unload()
    with TritonClient(server.grpc_url) as ok:  # the project's client, with the configured secret
        assert ok.ready_versions() == [1]


def test_http_clients_without_the_secret_are_refused(served, tmp_path):
    root, server = served
    base = f"http://{server.http_url}/v2"

    def post(path, body, headers=None):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    upload = {"parameters": {"config": json.dumps({"backend": "python"}),
                             "file:1/model.py": base64.b64encode(evil(tmp_path / "pwned")).decode()}}
    for headers in (None, {ADMIN_HEADER: "wrong"}):
        for path, body in (("/repository/models/evil/load", upload), (f"/repository/models/{MODEL}/unload", {}),
                           ("/repository/index", {}), ("/systemsharedmemory/region/x/register",
                                                       {"key": "/x", "offset": 0, "byte_size": 64})):
            code, text = post(path, body, headers)
            assert code == 403 and b"restricted" in text, (path, code, text)
    assert not (root / "repo" / "evil").exists() and not (tmp_path / "pwned").exists()
    code, _ = post(f"/models/{MODEL}/infer", {"inputs": [
        {"name": "img_emb", "shape": [1, 512], "datatype": "FP32", "data": [0.0] * 512},
        {"name": "txt_emb", "shape": [1, 768], "datatype": "FP32", "data": [0.0] * 768}]})
    assert code == 200  # inference is open
    code, text = post("/repository/index", {}, {ADMIN_HEADER: server.admin_secret})
    assert code == 200 and b"social_tone" in text


def test_reload_with_a_wrong_secret_fails_at_once_and_rejects_nothing(served):
    root, server = served
    trepo.publish(root / "run", root / "repo", execution_env=sys.prefix)
    p = subprocess.run([sys.executable, "-m", "tasks", "reload", "--model-dir", str(root / "run"), "--repo",
                        str(root / "repo"), "--url", server.grpc_url, "--retries", "3"],
                       capture_output=True, text=True, env={**os.environ, ADMIN_SECRET_ENV: "wrong"}, timeout=60)
    assert p.returncode == 1 and "wrong admin secret" in p.stdout and "Traceback" not in p.stderr
    assert trepo.versions(root / "repo" / MODEL) == [1, 2] and not trepo.rejected_dir(root / "repo", MODEL).exists()
    r = reload(root / "repo", MODEL, url=server.grpc_url, run_dir=root / "run")
    assert r["version"] == 2 and r["canary"]["ok"]
