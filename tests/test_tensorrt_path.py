"""The production serving path, the parts that run without a GPU: the TensorRT profile and
batched parity, publish's fallback to the onnxruntime backend, per-precision canary
tolerances, GPU instance kinds, the config that travels with each version, gpu-smoke's skip."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks import convert_tensorrt as ct
from tasks.parity import ATOL, tolerance
from tasks.triton import repo as trepo
from tasks.triton.reload import canary_tolerance

REPO_ROOT = Path(__file__).resolve().parents[1]


def fake_run(path: Path, n_labels: int = 5, plan: bool = False, fp16: bool = False) -> Path:
    """A run dir as publish reads it (the graph's bytes are only copied, never run here)."""
    path.mkdir(parents=True)
    (path / "model_config.json").write_text(json.dumps({"img_dim": 4, "txt_dim": 3, "n_labels": n_labels}))
    (path / "thresholds.json").write_text(json.dumps({"thresholds": [0.5] * n_labels,
                                                      "label_names": [f"t{i}" for i in range(n_labels)]}))
    (path / "model.onnx").write_bytes(b"onnx graph")
    if plan:
        (path / "model.plan").write_bytes(b"tensorrt plan")
        precision = "fp16" if fp16 else "fp32"
        (path / "tensorrt.json").write_text(json.dumps({"ok": True, "fp16": fp16, "precision": precision,
                                                        "atol": tolerance("tensorrt_plan", precision),
                                                        "max_abs_diff": 4e-3, "profile": [1, 256, 1024]}))
    else:  # what convert-tensorrt leaves on a host without a GPU
        (path / "tensorrt.json").write_text(json.dumps({"skipped": True, "reason": "no CUDA device"}))
    return path


def test_profile_clamps_opt_to_max():
    assert ct.profile_batches(1024, 256) == (1, 256, 1024)
    assert ct.profile_batches(64, 256) == (1, 64, 64)  # opt > max: TensorRT would refuse the profile
    with pytest.raises(ValueError, match=">= 1"):
        ct.profile_batches(0, 256)


class ReusingRunner:
    """Like polygraphy's TrtRunner: every answer is a view of one output buffer that the next
    call overwrites."""

    def __init__(self, n_labels: int):
        self.buffer = np.empty((1024, n_labels), np.float32)
        self.calls = []

    def infer(self, feed):
        img, txt = feed["img_emb"], feed["txt_emb"]
        self.calls.append(len(img))
        out = self.buffer[:len(img)]
        out[:] = img.sum(axis=1, keepdims=True) + txt.sum(axis=1, keepdims=True)
        return {"logits": out}


def test_parity_over_more_rows_than_max_batch_copies_each_answer():
    rng = np.random.default_rng(0)
    img, txt = rng.standard_normal((250, 4), np.float32), rng.standard_normal((250, 3), np.float32)
    runner = ReusingRunner(5)
    got = ct.infer_batched(runner.infer, img, txt, max_batch=100)
    assert runner.calls == [100, 100, 50]
    want = np.repeat(img.sum(axis=1, keepdims=True) + txt.sum(axis=1, keepdims=True), 5, axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6)  # without the copy, rows 0-99 would hold rows 200-249's logits


def test_publish_without_a_plan_falls_back_to_onnxruntime(tmp_path):
    run = fake_run(tmp_path / "run")
    p = subprocess.run([sys.executable, "-m", "tasks", "publish", "--model-dir", str(run), "--repo", str(tmp_path / "repo"),
                        "--backend", "tensorrt_plan", "--gpu"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["version"] == 1 and r["backend"] == "onnxruntime"
    assert "no TensorRT plan" in r["fallback"] and "no CUDA device" in r["fallback"]
    assert "no TensorRT plan" in p.stderr  # said in the task log too
    vdir = tmp_path / "repo" / "social_tone" / "1"
    assert sorted(x.name for x in vdir.iterdir()) == ["config.pbtxt", "model.onnx", "serving.json", "thresholds.json"]
    cfg = (tmp_path / "repo" / "social_tone" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in cfg and "KIND_GPU" in cfg and "count: 1" in cfg
    serving = json.loads((vdir / "serving.json").read_text())
    assert serving["canary_atol"] == tolerance("onnxruntime", gpu=True) and serving["fallback"]
    assert canary_tolerance(tmp_path / "repo", "social_tone", 1) == 1e-3


@pytest.mark.parametrize("fp16", [False, True])
def test_a_plan_is_published_with_its_own_parity_tolerance(tmp_path, fp16):
    run = fake_run(tmp_path / "run", plan=True, fp16=fp16)
    r = trepo.publish(run, tmp_path / "repo", backend="tensorrt_plan")
    assert r == {"version": 1, "backend": "tensorrt_plan"}
    vdir = tmp_path / "repo" / "social_tone" / "1"
    assert (vdir / "model.plan").read_bytes() == b"tensorrt plan" and not (vdir / "model.onnx").exists()
    serving = json.loads((vdir / "serving.json").read_text())
    assert serving["precision"] == ("fp16" if fp16 else "fp32")
    assert serving["tensorrt_parity"]["max_abs_diff"] == 4e-3
    # an FP16 plan's logits differ by ~4e-3: the canary must not use the ORT tolerance (1e-4)
    assert canary_tolerance(tmp_path / "repo", "social_tone", 1) == (2e-2 if fp16 else 1e-3)


def test_every_backend_declares_only_logits_and_cpu_or_gpu_instances():
    """Parsed with Triton's own ModelConfig schema (tritonclient's model_config_pb2), as the
    server parses it: a misspelt field or a wrong nesting fails here, not on the GPU host."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb
    for backend in trepo.BACKENDS:
        for gpu in (False, True):
            cfg = text_format.Parse(trepo.render_config("m", backend, 512, 768, 50, gpu=gpu), pb.ModelConfig())
            assert [o.name for o in cfg.output] == ["logits"] and cfg.output[0].label_filename == "labels.txt"
            assert [(i.name, list(i.dims)) for i in cfg.input] == [("img_emb", [512]), ("txt_emb", [768])]
            on_gpu = backend == "tensorrt_plan" or (backend == "onnxruntime" and gpu)
            kind = pb.ModelInstanceGroup.KIND_GPU if on_gpu else pb.ModelInstanceGroup.KIND_CPU
            assert [g.kind for g in cfg.instance_group] == [kind]
            assert cfg.dynamic_batching.max_queue_delay_microseconds == (500 if on_gpu else 0)
            accel = [(a.name, dict(a.parameters)) for a in cfg.optimization.execution_accelerators
                     .gpu_execution_accelerator]
            # ORT's CUDA provider would run fp32 GEMMs in TF32 (logits off by up to 5e-3)
            assert accel == ([("cuda", {"use_tf32": "0"})] if backend == "onnxruntime" and gpu else [])


def test_the_config_travels_with_its_version(tmp_path):
    """config.pbtxt is per model, the backend per version: a rollback or a restart puts back
    the config the serving version was published with."""
    repo = tmp_path / "repo"
    trepo.publish(fake_run(tmp_path / "run1"), repo, backend="onnxruntime")
    trepo.publish(fake_run(tmp_path / "run2", plan=True), repo, backend="tensorrt_plan")
    live = repo / "social_tone" / "config.pbtxt"
    assert 'backend: "tensorrt"' in live.read_text()
    trepo.mark_good(repo, "social_tone", 1)  # v2 never passed a canary
    r = trepo.prepare_start(repo, "social_tone")
    assert r == {"model": "social_tone", "retired": [2], "version": 1}
    assert 'backend: "onnxruntime"' in live.read_text()
    assert trepo.restore_config(repo, "social_tone", 1) is False  # already in place
    p = subprocess.run([sys.executable, "-m", "tasks", "triton-prepare", "--repo", str(tmp_path / "empty")],
                       capture_output=True, text=True, cwd=REPO_ROOT)
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[-1])["version"] is None


def test_gpu_smoke_skips_cleanly_without_a_gpu():
    if ct.cuda_devices()[0] > 0:
        pytest.skip("a GPU is present: run `make gpu-smoke` itself")
    p = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gpu-smoke.sh")], capture_output=True, text=True,
                       cwd=REPO_ROOT, timeout=60)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "skipped: no GPU" in p.stdout


def test_a_promised_gpu_that_is_not_there_fails_and_says_why(tmp_path, monkeypatch):
    """SOCIAL_TONE_GPU=true (the DAG passes --require-gpu): a convert container that sees no GPU
    fails with the driver's reason instead of skipping into ONNX on a GPU Triton (issue 25, 7)."""
    if ct.cuda_devices()[0] > 0:
        pytest.skip("a GPU is present")
    p = subprocess.run([sys.executable, "-m", "tasks", "convert-tensorrt", "--model-dir", str(tmp_path), "--require-gpu",
                        "true"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert p.returncode == 4, p.stdout + p.stderr
    assert "SOCIAL_TONE_GPU is true but no GPU: no CUDA driver" in p.stdout + p.stderr
    assert json.loads((tmp_path / "tensorrt.json").read_text())["skipped"] is False
    p = subprocess.run([sys.executable, "-m", "tasks", "convert-tensorrt", "--model-dir", str(tmp_path), "--require-gpu",
                        "false"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert p.returncode == 5, p.stdout + p.stderr

    class Driver:  # a driver whose cuInit fails as in a container started without --gpus
        def cuInit(self, flags):
            return 100

        def cuGetErrorName(self, err, out):
            out._obj.value = b"CUDA_ERROR_NO_DEVICE"
            return 0
    monkeypatch.setattr(ct.ctypes, "CDLL", lambda name: Driver())
    assert ct.cuda_devices() == (0, "cuInit failed with CUDA error 100 (CUDA_ERROR_NO_DEVICE)")


def test_the_tensorrt_images_modules_parse_as_python_3_10():
    """NGC 24.10 ships Python 3.10: what convert-tensorrt imports must not use newer syntax."""
    import ast
    for mod in ("__main__", "cli", "errors", "contract", "fsutil", "parity", "convert_tensorrt", "dataset", "split",
                "triton/repo", "triton/reload", "triton/client"):
        path = REPO_ROOT / "tasks" / f"{mod}.py"
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))


PY310 = Path.home() / ".pyenv" / "versions" / "3.10.13" / "bin" / "python"


@pytest.fixture(scope="module")
def trt_image_python():
    """A Python 3.10 venv with the TensorRT image's pins (docker/requirements-tensorrt.txt),
    cached by their content: convert-tensorrt's whole import chain as the NGC image runs it."""
    import hashlib
    if not PY310.exists():
        pytest.skip(f"no Python 3.10 at {PY310} (the NGC 24.10 images' interpreter)")
    req = REPO_ROOT / "docker" / "requirements-tensorrt.txt"
    venv = Path.home() / ".cache" / "social-tone" / f"venv-trt310-{hashlib.sha256(req.read_bytes()).hexdigest()[:12]}"
    if not (venv / ".complete").exists():
        subprocess.run([str(PY310), "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(req)], check=True)
        (venv / ".complete").touch()
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    from tasks import synth
    from tasks.export_onnx import export_onnx
    from tasks.train import TrainConfig, train
    root = tmp_path_factory.mktemp("trt")
    synth.write_labeled(root / "d", "d", rows=3000, seed=4)
    train([root / "d"], root / "run", TrainConfig(max_epochs=1, candidates="mlp", hidden=32), tracking_uri="none")
    export_onnx(root / "run", tracking_uri="none")
    return root / "run"


def convert_under_3_10(python: Path, run: Path, *flags, drift: float = 0.0):
    import shutil
    work = run.parent / f"{run.name}-{len(list(run.parent.iterdir()))}"
    shutil.copytree(run, work)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": f"{REPO_ROOT / 'tests' / 'gpu_fake'}:{REPO_ROOT}",
           "FAKE_TRT_DRIFT": str(drift)}
    p = subprocess.run([str(python), "-m", "tasks", "convert-tensorrt", "--model-dir", str(work), *flags], env=env,
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    return p, work


@pytest.mark.parametrize("fp16", [False, True])
def test_convert_runs_end_to_end_under_the_tensorrt_images_python(trt_image_python, exported_run, fp16):
    """convert() as the NGC image runs it (Python 3.10, its pins, the real polygraphy Profile and
    CreateConfig), with a fake engine that reuses its output buffer: max batch 64 makes 16
    requests over the 1000 check rows, so an answer kept as a view would fail parity."""
    p, run = convert_under_3_10(trt_image_python, exported_run, "--max-batch", "64", *(["--fp16"] if fp16 else []))
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads((run / "tensorrt.json").read_text())
    assert report["ok"] and report["rows"] == 1000 and report["max_abs_diff"] <= 1e-5
    assert report["tensorrt"] == "10.5.0.18" and report["profile"] == [1, 64, 64]
    assert report["precision"] == ("fp16" if fp16 else "fp32") and report["atol"] == ATOL[("tensorrt_plan", report["precision"])]
    plan = (run / "model.plan").read_text()
    assert f"fp16={fp16}" in plan and "'img_emb': ((1, 512), (64, 512), (64, 512))" in plan


def test_a_plan_off_by_more_than_the_tolerance_is_not_written_and_the_step_skips(trt_image_python, exported_run):
    p, run = convert_under_3_10(trt_image_python, exported_run, drift=0.01)
    assert p.returncode == 5, p.stdout + p.stderr
    report = json.loads((run / "tensorrt.json").read_text())
    assert not report["ok"] and report["skipped"] and "parity failed" in report["reason"]
    assert not (run / "model.plan").exists()
    from tasks.triton.repo import choose_model_file
    path, backend, why = choose_model_file(run, "tensorrt_plan")
    assert backend == "onnxruntime" and "parity failed" in why


def heredoc_docker_runs_without_stdin(text: str) -> list[str]:
    """`docker run ... <<EOF` or `< file` lines (continuations joined) that lack -i: docker would
    pass no stdin, the script inside would read nothing and exit 0, checking nothing."""
    joined = re.sub(r"\\\n\s*", " ", text)
    bad = []
    for line in joined.splitlines():
        if re.search(r"\bdocker run\b", line) and re.search(r"<<(?!<)|(?<![<\d])<\s*[\w./$\"]", line):
            flags = line.split("docker run", 1)[1].split()
            if not any(f in ("-i", "--interactive", "-it", "-ti") or re.fullmatch(r"-[a-z]*i[a-z]*", f) for f in flags):
                bad.append(line.strip())
    return bad


def test_every_docker_run_fed_by_a_heredoc_has_stdin():
    assert heredoc_docker_runs_without_stdin('docker run --rm img python3 - <<EOF\nprint(1)\nEOF\n')  # the check can fail
    assert not heredoc_docker_runs_without_stdin('docker run --rm -i img \\\n  python3 - <<EOF\nEOF\n')
    assert not heredoc_docker_runs_without_stdin('grep x <<<"$h"\ndocker run --rm img true\n')
    assert heredoc_docker_runs_without_stdin('docker run --rm img python3 - "$W" < scripts/x.py\n')
    assert not heredoc_docker_runs_without_stdin('docker run --rm -i img python3 - "$W" < scripts/x.py\n')
    scripts = [*REPO_ROOT.glob("scripts/*.sh"), *REPO_ROOT.glob("docker/*.sh"), REPO_ROOT / "Makefile",
               REPO_ROOT / ".ci" / "run"]
    bad = {str(p.relative_to(REPO_ROOT)): b for p in scripts if (b := heredoc_docker_runs_without_stdin(p.read_text()))}
    assert not bad, bad


def agreement(work: Path, *models: str):
    return subprocess.run([sys.executable, "-", str(work), "12", *models], capture_output=True, text=True, timeout=60,
                          input=(REPO_ROOT / "scripts" / "gpu_agreement.py").read_text())


def test_gpu_smokes_agreement_step_passes_equal_predictions_and_fails_on_a_mismatch(tmp_path):
    """The step as gpu-smoke runs it (`python3 - ... < scripts/gpu_agreement.py`), on CPU
    predictions: a backend that agrees passes; one that changes the topics of 5% of the posts, or that
    wrote nothing, fails the smoke (exit 1) and gpu-smoke.json says which."""
    import pandas as pd
    rng = np.random.default_rng(0)
    p = rng.random((200, 3)).astype(np.float32)
    cpu = pd.DataFrame({"post_id": [f"p{i}" for i in range(200)], **{f"p_t{k}": p[:, k] for k in range(3)}})
    cpu["topics"] = [[f"t{k}" for k in range(3) if row[k] >= 0.5] for row in p]
    cpu.to_parquet(tmp_path / "pred-cpu.parquet")
    for model, flip in (("st_ok", 0), ("st_bad", 10)):  # 10 of 200 posts: 95% same, under the 99% bar
        got = cpu.copy()
        got["p_t0"] = got["p_t0"] + 1e-4
        got.loc[:flip - 1, "topics"] = pd.Series([["not-a-topic"]] * flip) if flip else None
        got.to_parquet(tmp_path / f"pred-{model}.parquet")
        (tmp_path / "repo" / model / "1").mkdir(parents=True)
        (tmp_path / "repo" / model / "1" / "serving.json").write_text(json.dumps(
            {"backend": "tensorrt_plan", "precision": "fp32", "canary_atol": 1e-3}))
    r = agreement(tmp_path, "st_ok")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "gpu-smoke.json").read_text())
    assert report["ok"] and report["backends"]["st_ok"]["rows_with_same_topics"] == 1.0
    assert report["backends"]["st_ok"]["max_prob_diff"] == pytest.approx(1e-4, rel=1e-2)
    r = agreement(tmp_path, "st_ok", "st_bad", "st_gone")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads((tmp_path / "gpu-smoke.json").read_text())
    assert not report["ok"] and report["backends"]["st_bad"]["rows_with_same_topics"] == 0.95
    assert [f.split(":")[0] for f in report["failed"]] == ["st_bad", "st_gone"]


def test_a_plan_that_fails_parity_is_skipped_and_the_onnx_graph_served_with_the_reason(tmp_path):
    """convert-tensorrt on a plan that disagrees with ORT ends as skipped (exit 5), so the DAG
    stays green and publish serves the ONNX graph, saying why (issue 25, item 6)."""
    from tasks.cli import EXIT_SKIPPED
    from tasks.convert_tensorrt import TensorRTParityError
    from tasks.errors import Skipped
    from tasks.triton.repo import choose_model_file
    assert issubclass(TensorRTParityError, Skipped) and EXIT_SKIPPED == 5
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.onnx").write_bytes(b"graph")
    reason = "TensorRT fp32 parity failed (max |diff| 3.10e-03 > 1e-03, 2 rows with different labels); plan not written"
    (run / "tensorrt.json").write_text(json.dumps({"ok": False, "skipped": True, "reason": reason}))
    path, backend, why = choose_model_file(run, "tensorrt_plan")
    assert path == run / "model.onnx" and backend == "onnxruntime" and reason in why


def test_a_gpu_stack_stops_at_once_when_an_ngc_image_is_not_loaded(tmp_path):
    """No registry is used: a missing NGC base must stop the build (and TEAM_GPU=1 team-up)
    with what to do, before anything is built, never at the first retrain."""
    p = subprocess.run(["docker/build-images.sh", "--tensorrt"], cwd=REPO_ROOT, capture_output=True, text=True,
                       env={**os.environ, "TENSORRT_BASE_IMAGE": "social-tone/no-such-ngc-base:0"}, timeout=120)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "social-tone/no-such-ngc-base:0 is not on this engine" in p.stderr and "docker load" in p.stderr
    assert "built" not in p.stdout and "exists" not in p.stdout
    p = subprocess.run(["docker/build-images.sh", "--no-such-option"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown option" in p.stderr
