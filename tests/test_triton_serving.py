"""A real tritonserver (PyPI's nvidia-pytriton build, CPU) serving through Triton's C++ onnxruntime
backend (docker/build-ort-backend.sh): publish, hot reload, canary, rollback; the Python-backend
fallback."""
import json
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from tasks import dataset as ds
from tasks import env
from tasks import synth
from tasks.export_onnx import export_onnx
from tasks.split import TEST
from tasks.topics import decide
from tasks.train import TrainConfig, train
from tasks.triton import repo as trepo
from tasks.triton.client import TritonClient, TritonUnavailable
from tasks.triton.reload import ReloadFailed, reload, rollback
from tasks.triton import server as server_mod
from tasks.triton.server import TritonServer, free_port

MODEL = "social_tone"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two different trained + exported runs on one drop."""
    root = tmp_path_factory.mktemp("serve")
    synth.write_labeled(root / "d", "d", rows=6000, seed=4)
    for name, seed in (("run1", 1), ("run2", 2)):
        train([root / "d"], root / name, TrainConfig(max_epochs=2, seed=seed), tracking_uri="none")
        export_onnx(root / name, tracking_uri="none")
    return root


@pytest.fixture
def server(tmp_path):
    with TritonServer(tmp_path / "repo", tmp_path / "triton") as s:
        yield s


def rows(root, n=256):
    img, txt, _ = ds.load([root / "d"]).part(TEST)
    return np.ascontiguousarray(img[:n]), np.ascontiguousarray(txt[:n])


def ort_logits(run, img, txt):
    return ort.InferenceSession(str(run / "model.onnx")).run(["logits"], {"img_emb": img, "txt_emb": txt})[0]


def publish_and_reload(root, run, server, **kw):
    v = trepo.publish(root / run, server.model_repo)["version"]
    r = reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / run, **kw)
    assert r["version"] == v
    return r


def test_publish_v1_and_serve_it(runs, server):
    root = runs
    r = publish_and_reload(root, "run1", server)
    assert r["previous"] == [] and r["canary"]["ok"] and r["canary"]["rows"] == 1000
    # the canary checked the very rows ONNX parity checked (the run's check_rows.npz)
    parity = json.loads((root / "run1" / "onnx_parity.json").read_text())
    assert r["canary"]["rows_sha256"] == parity["rows_sha256"] and parity["rows"] == 1000
    files = {p.name for p in (server.model_repo / MODEL / "1").iterdir()}
    assert {"model.onnx", "thresholds.json"} <= files and "model.py" not in files
    assert TritonClient(server.grpc_url).config()["backend"] == "onnxruntime"
    img, txt = rows(root)
    with TritonClient(server.grpc_url) as c:
        p = c.infer(img, txt)
        assert p.version == "1"
        want = ort_logits(root / "run1", img, txt)
        assert np.abs(p.logits - want).max() <= 1e-5
        thr = np.asarray(json.loads((root / "run1" / "thresholds.json").read_text())["thresholds"])
        served_thr = trepo.thresholds(server.model_repo, MODEL, p.version)["thresholds"]
        np.testing.assert_array_equal(decide(p.logits, served_thr)[1], 1 / (1 + np.exp(-want)) >= thr)
        assert c.label_names(50, 512, 768)[:2] == ["ceasefire_talks", "prisoner_exchange"]  # synth names


def test_merged_and_oversized_requests_each_get_their_own_rows(runs, server):
    """The dynamic batcher hands the backend several requests at once (one ORT call, split back);
    arrays above max_batch_size are split by the client and joined again."""
    root = runs
    trepo.publish(root / "run1", server.model_repo,
                  max_batch_size=100)
    reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / "run1")
    img, txt = rows(root, 250)
    want = ort_logits(root / "run1", img, txt)
    thr = np.asarray(json.loads((root / "run1" / "thresholds.json").read_text())["thresholds"])
    wrong = []

    def client(seed):
        rng = np.random.default_rng(seed)
        with TritonClient(server.grpc_url) as c:
            for _ in range(40):
                n = int(rng.choice([1, 7, 64, 100]))
                s = int(rng.integers(0, 250 - n + 1))
                p = c.infer(img[s:s + n], txt[s:s + n])
                if p.logits.shape != (n, 50) or np.abs(p.logits - want[s:s + n]).max() > 1e-5:
                    wrong.append((seed, s, n))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    with TritonClient(server.grpc_url) as c:
        stats = c.client.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]
        assert int(stats["execution_count"]) < int(stats["inference_count"]), "no request was ever merged"
        assert c.max_batch() == 100
        p = c.infer(img, txt)  # 250 rows: three requests
        assert np.abs(p.logits - want).max() <= 1e-5
        np.testing.assert_array_equal(decide(p.logits, thr)[1], 1 / (1 + np.exp(-want)) >= thr)
        with pytest.raises(Exception, match="batch"):  # what the split avoids
            c._infer(img, txt, None)


def test_hot_reload_v2_under_load_has_zero_failures(runs, server):
    root = runs
    publish_and_reload(root, "run1", server)
    img, txt = rows(root, 64)
    want = {"1": ort_logits(root / "run1", img, txt), "2": ort_logits(root / "run2", img, txt)}
    stop, failures, seen, done = threading.Event(), [], [], []

    def client_loop():
        with TritonClient(server.grpc_url, retries=0) as c:
            while not stop.is_set():
                try:
                    p = c.infer(img, txt)
                    # every answer is wholly one version's, never a mix or garbage
                    assert np.abs(p.logits - want[p.version]).max() <= 1e-5
                    seen.append(p.version)
                except Exception as e:  # noqa: BLE001 - counting is the point
                    failures.append(repr(e))
                done.append(1)

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = publish_and_reload(root, "run2", server)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert r["previous"] == [1] and r["canary"]["ok"]
    assert {"1", "2"} <= set(seen) and seen[-1] == "2" and len(done) > 20
    assert TritonClient(server.grpc_url).ready_versions() == [2]


def test_broken_v3_is_rejected_and_v2_keeps_serving(runs, server, tmp_path):
    root = runs
    publish_and_reload(root, "run1", server)
    publish_and_reload(root, "run2", server)
    (tmp_path / "broken.onnx").write_bytes(b"this is not an onnx graph")
    trepo.publish(root / "run2", server.model_repo, model_file=tmp_path / "broken.onnx")
    with pytest.raises(ReloadFailed, match="(?s)version 3: load failed.*version 2 serves"):
        reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / "run2")
    img, txt = rows(root)
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [2]
        p = c.infer(img, txt)
        assert p.version == "2" and np.abs(p.logits - ort_logits(root / "run2", img, txt)).max() <= 1e-5
    assert trepo.versions(server.model_repo / MODEL) == [1, 2]
    rejected = trepo.rejected_dir(server.model_repo, MODEL) / "3"
    assert "load failed" in (rejected / "REJECTED.txt").read_text()
    # numbers are never reused: the next good version is 4
    assert publish_and_reload(root, "run1", server)["version"] == 4


def test_canary_mismatch_rolls_back_to_the_previous_version(runs, server):
    root = runs
    publish_and_reload(root, "run1", server)
    # version 2 loads fine but serves run1's graph while the run that was gated is run2:
    # the canary (Triton vs ONNX Runtime on run2's model.onnx) must catch it and roll back
    trepo.publish(root / "run2", server.model_repo, model_file=root / "run1" / "model.onnx")
    with pytest.raises(ReloadFailed, match="(?s)canary mismatch.*version 1 serves"):
        reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / "run2")
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [1]
        assert c.infer(*rows(root, 8)).version == "1"
    assert trepo.versions(server.model_repo / MODEL) == [1]


def test_a_plan_of_another_tensorrt_is_refused_before_loading_and_rolled_back(runs, server, tmp_path):
    """A plan only loads on the TensorRT that built it: the server's release says which
    (tritonserver 2.51.0 = TensorRT 10.5), so a 10.3 plan is refused with that reason, never sent
    to the server, and the previous version keeps serving (issue 25, item 8)."""
    import shutil
    root = runs
    publish_and_reload(root, "run1", server)
    run = tmp_path / "run-plan"
    shutil.copytree(root / "run2", run)
    (run / "model.plan").write_bytes(b"a plan built elsewhere")
    (run / "tensorrt.json").write_text(json.dumps({"ok": True, "precision": "fp32", "atol": 1e-3, "max_abs_diff": 1e-5,
                                                   "tensorrt": "10.3.0.26", "profile": [1, 256, 1024]}))
    assert trepo.publish(run, server.model_repo, backend="tensorrt_plan")["version"] == 2
    with TritonClient(server.grpc_url) as c:
        assert c.server_version() == "2.51.0"
    with pytest.raises(ReloadFailed, match=r"(?s)version 2: the plan was built with TensorRT 10\.3\.0\.26, but this server "
                                           r"\(tritonserver 2\.51\.0\) runs TensorRT 10\.5.*version 1 serves"):
        reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=run)
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [1] and c.infer(*rows(root, 8)).version == "1"
    assert "TensorRT 10.3.0.26" in (trepo.rejected_dir(server.model_repo, MODEL) / "2" / "REJECTED.txt").read_text()
    assert trepo.plan_mismatch({"backend": "tensorrt_plan", "tensorrt_parity": {"tensorrt": "10.5.0.18"}},
                               "2.51.0") is None
    assert trepo.plan_mismatch({"backend": "onnxruntime"}, "2.51.0") is None


def test_manual_rollback_and_cli(runs, server):
    root = runs
    publish_and_reload(root, "run1", server)
    publish_and_reload(root, "run2", server)
    r = rollback(server.model_repo, MODEL, server.grpc_url, reason="bad topics reported")
    assert r == {"model": MODEL, "retired": 2, "version": 1}
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [1] and c.infer(*rows(root, 4)).version == "1"
    # the same flow through the CLI: publish + reload of run2 again
    cli = [sys.executable, "-m", "tasks"]
    out = subprocess.run(cli + ["publish", "--model-dir", str(root / "run2"), "--repo", str(server.model_repo)],
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert json.loads(out)["version"] == 3
    p = subprocess.run(cli + ["reload", "--model-dir", str(root / "run2"), "--repo", str(server.model_repo),
                              "--url", server.grpc_url], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["version"] == 3


def test_rollback_puts_back_the_config_of_the_version_it_serves(runs, server):
    """config.pbtxt is per model: v2 was published with another config (here max_batch_size;
    in production another backend), so rolling back to v1 must restore v1's config."""
    root = runs
    publish_and_reload(root, "run1", server)
    trepo.publish(root / "run2", server.model_repo, max_batch_size=100)
    reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / "run2")
    with TritonClient(server.grpc_url) as c:
        assert int(c.config()["max_batch_size"]) == 100
    rollback(server.model_repo, MODEL, server.grpc_url)
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [1] and int(c.config()["max_batch_size"]) == 1024
        assert c.infer(*rows(root, 300)).version == "1"


def test_unreachable_triton_is_retried_then_fails_clearly(runs, tmp_path):
    url = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(TritonUnavailable, match="unreachable after 3 attempts"):
        TritonClient(url, retries=2, backoff=0.1).ready_versions()
    assert time.monotonic() - t0 >= 0.3  # it did back off
    trepo.publish(runs / "run1", tmp_path / "repo")
    p = subprocess.run([sys.executable, "-m", "tasks", "reload", "--model-dir", str(runs / "run1"), "--repo",
                        str(tmp_path / "repo"), "--url", url, "--retries", "1"], capture_output=True, text=True)
    assert p.returncode == 6 and "unreachable" in json.loads(p.stdout.splitlines()[-1])["error"]
    assert trepo.versions(tmp_path / "repo" / MODEL) == [1], "an unreachable server rejects nothing"


def test_tensorrt_skips_cleanly_without_a_gpu(runs, tmp_path):
    from tasks.convert_tensorrt import cuda_devices
    if cuda_devices()[0] > 0:
        pytest.skip("a GPU is present: the skip path does not apply (parity runs in the GPU image)")
    out = tmp_path / "model.plan"
    p = subprocess.run([sys.executable, "-m", "tasks", "convert-tensorrt", "--model-dir", str(runs / "run1"),
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 5, p.stderr
    result = json.loads(p.stdout.splitlines()[-1])
    assert result["skipped"] is True and "CUDA" in result["reason"]
    assert not out.exists()
    assert json.loads((tmp_path / "tensorrt.json").read_text())["skipped"] is True


def test_config_and_pruning(runs, tmp_path):
    root = runs
    for _ in range(4):
        trepo.publish(root / "run1", tmp_path / "repo", keep=3)
    model_dir = tmp_path / "repo" / MODEL
    assert trepo.versions(model_dir) == [2, 3, 4]
    assert not list((tmp_path / "repo" / trepo.PRUNED / MODEL).iterdir()), "pruned version 1 fully deleted"
    cfg = (model_dir / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in cfg and "max_batch_size: 1024" in cfg and "KIND_CPU" in cfg
    assert 'key: "intra_op_thread_count" value: { string_value: "1" }' in cfg
    assert "max_queue_delay_microseconds: 0" in cfg and "dims: [ 768 ]" in cfg
    assert (model_dir / "labels.txt").read_text().splitlines()[0] == "ceasefire_talks"
    assert 'backend: "tensorrt"' in trepo.render_config("m", "tensorrt_plan", 512, 768, 50)
    with pytest.raises(ValueError, match="keep"):
        trepo.publish(root / "run1", tmp_path / "repo", keep=1)


def test_concurrent_publishes_get_distinct_versions(runs, tmp_path):
    """A drop's run and warcov_retrain_now may publish at the same moment: each process gets
    its own version and none fails (the repository's publish lock)."""
    code = ("import json, sys; from tasks.triton import repo\n"
            "print(json.dumps(repo.publish(sys.argv[1], sys.argv[2], keep=10)['version']))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(runs / "run1"), str(tmp_path / "repo")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    assert sorted(int(o.strip()) for o, _ in outs) == [1, 2, 3, 4]
    assert trepo.versions(tmp_path / "repo" / MODEL) == [1, 2, 3, 4]


def test_interrupted_publish_is_repaired_by_the_next_run(runs, server):
    """A crash between publish and reload leaves version 2 published but not loaded, and a
    crash inside a publish leaves a hidden temp dir: the next run's reload loads its own new
    version, and the half-written dir is never taken for a version."""
    root = runs
    publish_and_reload(root, "run1", server)
    trepo.publish(root / "run2", server.model_repo)  # then "crash"
    half = server.model_repo / MODEL / ".3.crashed.tmp"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"half a graph")
    assert trepo.versions(server.model_repo / MODEL) == [1, 2]
    r = publish_and_reload(root, "run2", server)  # the next run
    assert r["version"] == 3 and r["canary"]["ok"]
    with TritonClient(server.grpc_url) as c:
        assert c.ready_versions() == [3] and c.infer(*rows(root, 4)).version == "3"


def test_triton_down_during_reload_then_back_serves_the_old_model(runs, tmp_path):
    """Triton dies; a run publishes v2 and its reload fails after retries (exit 6, nothing
    rejected). When Triton comes back (`tasks serve --load`), the last good version (v1)
    serves again, and the unverified v2 is moved aside."""
    import signal as sig
    root, repo = runs, tmp_path / "repo"
    ports = [str(free_port()) for _ in range(3)]
    cmd = [sys.executable, "-m", "tasks", "serve", "--repo", str(repo), "--workdir", str(tmp_path / "w"),
           "--load", MODEL, "--grpc-port", ports[0], "--http-port", ports[1], "--metrics-port", ports[2]]
    url = f"127.0.0.1:{ports[0]}"

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        json.loads(p.stdout.readline())
        return p

    trepo.publish(root / "run1", repo)
    server = start()
    reload(repo, MODEL, url=url, run_dir=root / "run1")
    server.send_signal(sig.SIGTERM)
    server.wait(timeout=60)
    trepo.publish(root / "run2", repo)
    p = subprocess.run([sys.executable, "-m", "tasks", "reload", "--model-dir", str(root / "run2"), "--repo", str(repo),
                        "--url", url, "--retries", "2"], capture_output=True, text=True)
    assert p.returncode == 6 and "unreachable after 3 attempts" in p.stdout
    assert trepo.versions(repo / MODEL) == [1, 2]
    server = start()
    try:
        with TritonClient(url) as c:
            assert c.ready_versions() == [1] and c.infer(*rows(root, 4)).version == "1"
        assert trepo.versions(repo / MODEL) == [1]
        assert "never passed a canary" in (trepo.rejected_dir(repo, MODEL) / "2" / "REJECTED.txt").read_text()
    finally:
        server.send_signal(sig.SIGTERM)
        server.wait(timeout=60)


def test_python_backend_is_the_fallback_chosen_by_one_setting(runs, tmp_path, monkeypatch):
    """Without the C++ backend built, a server starts only with the fallback setting, and then
    the Python backend's stub serves the same logits and passes the same canary."""
    root = runs
    monkeypatch.setattr(server_mod, "ORT_BACKEND", tmp_path / "not-built")
    with pytest.raises(server_mod.BackendMissing, match="build-ort-backend.sh .*SOCIAL_TONE_TRITON_BACKEND=python"):
        TritonServer(tmp_path / "repo0", tmp_path / "triton0").start()
    monkeypatch.setenv("SOCIAL_TONE_TRITON_BACKEND", "python")
    with TritonServer(tmp_path / "repo", tmp_path / "triton") as server:
        assert not (server.workdir / "backends" / "onnxruntime").exists()
        v = trepo.publish(root / "run1", server.model_repo, backend=env.get("SOCIAL_TONE_TRITON_BACKEND"),
                          execution_env=sys.prefix)["version"]
        assert (server.model_repo / MODEL / str(v) / "model.py").is_file()
        r = reload(server.model_repo, MODEL, url=server.grpc_url, run_dir=root / "run1")
        assert r["canary"]["ok"] and TritonClient(server.grpc_url).config()["backend"] == "python"
        img, txt = rows(root)
        with TritonClient(server.grpc_url) as c:
            assert np.abs(c.infer(img, txt).logits - ort_logits(root / "run1", img, txt)).max() <= 1e-5
