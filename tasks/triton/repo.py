"""Publishing versions into a Triton model repository: <repo>/<model>/<N>/, written atomically.

A version dir holds the ONNX graph, the per-class thresholds and label names (so clients get
topics, not just logits), and for the Python backend (the CPU fallback) its model. config.pbtxt is
generated for the backend in use and names the label file for the labels output.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from tasks.fsutil import atomic_dir, atomic_write_text
from tasks import rundir
from tasks import env
from tasks.env import MODEL_NAME
from tasks.rundir import ONNX, PLAN, TENSORRT_REPORT, RunDir

BACKENDS = ("python", "onnxruntime", "tensorrt_plan")
PYTHON_MODEL = Path(__file__).with_name("python_model.py")
# A version dir <repo>/<model>/<N>/ keeps the run's file names (tasks/rundir.py), so that
# `tasks score --onnx-dir` reads either; the Python backend's model and the label file are Triton's.
PY_MODEL_FILE, LABELS = "model.py", "labels.txt"
# The largest request and the largest dynamic batch. Not higher on CPU: with a larger cap the
# batcher stacks two 1024-row requests onto one instance while the other idles (-25% rows/s
# at batch 1024, docs/benchmarks.md). Clients split bigger arrays (TritonClient.infer).
MAX_BATCH = 1024


REJECTED = ".rejected"  # <repo>/.rejected/<model>/<N>/: versions a reload refused (outside Triton's view)
PRUNED = ".pruned"      # <repo>/.pruned/<model>/: what could not be deleted of pruned versions
log = logging.getLogger(__name__)


def versions(model_dir: Path) -> list[int]:
    """Published versions (hidden temp dirs of an interrupted publish are not versions)."""
    return sorted(int(p.name) for p in Path(model_dir).glob("*") if p.is_dir() and p.name.isdigit())


def rejected_dir(repo: Path, model: str) -> Path:
    return Path(repo) / REJECTED / model


LAST_GOOD = "last_good.json"  # <repo>/<model>/last_good.json: the newest version that passed its canary


def mark_good(repo: Path, model: str, version: int) -> None:
    atomic_write_text(Path(repo) / model / LAST_GOOD, json.dumps({"version": version}) + "\n")


def last_good(repo: Path, model: str) -> int | None:
    p = Path(repo) / model / LAST_GOOD
    return int(json.loads(p.read_text())["version"]) if p.exists() else None


def retire_unverified(repo: Path, model: str) -> list[int]:
    """Before a (re)start loads the model: versions newer than the last one that passed a
    canary never got through a reload (e.g. Triton was down); move them aside so the
    last good version serves again. Returns the versions retired."""
    good = last_good(repo, model)
    if good is None:
        return []
    newer = [v for v in versions(Path(repo) / model) if v > good]
    for v in newer:
        reject(repo, model, v, f"never passed a canary (the last good version is {good}); retired at start")
    return newer


def prepare_start(repo: Path, model: str) -> dict:
    """Before a Triton (re)start loads `model`: retire unverified versions and put back the
    config of the version that will serve. Safe on an empty repository."""
    retired = retire_unverified(repo, model)
    serving = (versions(Path(repo) / model) or [None])[-1]
    if serving is not None:
        restore_config(repo, model, serving)
    return {"model": model, "retired": retired, "version": serving}


def next_version(repo: Path, model: str) -> int:
    """Version numbers are never reused, not even those of rejected versions."""
    used = versions(Path(repo) / model) + versions(rejected_dir(repo, model))
    return max(used, default=0) + 1


@contextlib.contextmanager
def publishing(repo: Path) -> Iterator[None]:
    """An exclusive lock on the repository for choosing and writing a version (flock on
    <repo>/.publish.lock: it holds across processes and containers sharing the folder)."""
    Path(repo).mkdir(parents=True, exist_ok=True)
    # read-only is enough for flock: a lock file another user created never blocks us
    fd = os.open(Path(repo) / ".publish.lock", os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def prune(repo: Path, model: str, keep: int) -> list[int]:
    """All but the newest `keep` versions leave Triton's view (one rename each), then are
    deleted. Triton's Python stub writes __pycache__ into a version dir as the server's user,
    which the publishing task's user may not be allowed to delete: what stays is left under
    <repo>/.pruned/ with a warning, and the publish that already succeeded does not fail."""
    model_dir = Path(repo) / model
    old = versions(model_dir)[:-keep] if keep > 0 else []
    for v in old:
        dest = Path(repo) / PRUNED / model / f"{v}.{time.time_ns()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(model_dir / str(v), dest)
        shutil.rmtree(dest, ignore_errors=True)
        if dest.exists():
            log.warning("pruned version %d of %s: could not delete all of it, left at %s", v, model, dest)
    return old


def reject(repo: Path, model: str, version: int, reason: str) -> Path:
    """Move a version out of Triton's view (one rename) and record why; returns where it went."""
    dest = rejected_dir(repo, model) / str(version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(Path(repo) / model / str(version), dest)
    atomic_write_text(dest / "REJECTED.txt", reason.rstrip() + "\n")
    return dest


def render_config(name: str, backend: str, img_dim: int, txt_dim: int, n_labels: int,
                  max_batch_size: int = MAX_BATCH, execution_env: str | None = None, instances: int = 1,
                  gpu: bool = False, threads: int | None = None) -> str:
    """One output on every backend: `logits`, with the label file for the classification
    extension. Clients turn logits into probabilities and topics with the thresholds of the
    version that answered (TritonClient.infer), so all backends answer the same request."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    threads = int(threads or env.get("SOCIAL_TONE_ORT_THREADS"))
    on_gpu = backend == "tensorrt_plan" or (backend == "onnxruntime" and gpu)
    lines = [f'name: "{name}"',
             f'backend: "{"tensorrt" if backend == "tensorrt_plan" else backend}"',
             f"max_batch_size: {max_batch_size}",
             "input [",
             f'  {{ name: "img_emb" data_type: TYPE_FP32 dims: [ {img_dim} ] }},',
             f'  {{ name: "txt_emb" data_type: TYPE_FP32 dims: [ {txt_dim} ] }}',
             "]",
             f'output [ {{ name: "logits" data_type: TYPE_FP32 dims: [ {n_labels} ] label_filename: "{LABELS}" }} ]',
             # On CPU the instances are the parallelism: never hold a request back to grow a
             # batch, merge only what queued while all instances were busy (500 us cost 20-25%
             # rows/s at batch 1 and 64). A GPU gains from waiting a little for a bigger batch.
             f"dynamic_batching {{ max_queue_delay_microseconds: {500 if on_gpu else 0} }}",
             f'instance_group [ {{ kind: {"KIND_GPU" if on_gpu else "KIND_CPU"} count: {1 if on_gpu else instances} }} ]',
             'version_policy: { latest { num_versions: 1 } }']
    if backend == "onnxruntime" and gpu:
        # ONNX Runtime's CUDA provider runs fp32 MatMul/Gemm in TF32 unless told not to (its
        # "use_tf32" option, which the onnxruntime backend passes through from here since r23.x):
        # TF32 moved logits by up to 5e-3 in emulation, past the canary's tolerance
        lines.append('optimization { execution_accelerators { gpu_execution_accelerator: [ '
                     '{ name: "cuda" parameters { key: "use_tf32" value: "0" } } ] } }')
    if backend == "onnxruntime" and not gpu:
        # the instances are the parallelism (as in the Python backend's model, which reads the same setting)
        lines.append(f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{threads}" }} }}')
    if backend == "python" and execution_env:
        lines.append(f'parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "{execution_env}" }} }}')
    return "\n".join(lines) + "\n"


CONFIG = "config.pbtxt"
SERVING = "serving.json"  # <N>/serving.json: backend, precision, canary tolerance (+ TensorRT parity)


def choose_model_file(run_dir: Path, backend: str) -> tuple[Path, str, str | None]:
    """(file, backend, why it fell back): a TensorRT plan when the run has one, else the ONNX
    graph on the onnxruntime backend (convert-tensorrt skipped: no GPU, or parity failed)."""
    run_dir = Path(run_dir)
    if backend != "tensorrt_plan" or (run_dir / PLAN).is_file():
        return run_dir / (PLAN if backend == "tensorrt_plan" else ONNX), backend, None
    report = run_dir / TENSORRT_REPORT
    why = json.loads(report.read_text()).get("reason") if report.is_file() else None
    return (run_dir / ONNX, "onnxruntime",
            f"no TensorRT plan in {run_dir} ({why or 'convert-tensorrt did not write one'}); "
            "serving the ONNX graph on the onnxruntime backend")


def serving_record(run_dir: Path, backend: str, gpu: bool) -> dict:
    """What a version is served with, and the canary tolerance that goes with it: the plan's
    own parity tolerance for TensorRT, else the table in tasks/parity.py."""
    from tasks.parity import tolerance
    record: dict = {"backend": backend, "gpu": bool(gpu or backend == "tensorrt_plan"), "precision": "fp32"}
    report = Path(run_dir) / TENSORRT_REPORT
    if backend == "tensorrt_plan" and report.is_file():
        parity = json.loads(report.read_text())
        record.update(precision=parity.get("precision", "fp16" if parity.get("fp16") else "fp32"),
                      canary_atol=float(parity["atol"]), tensorrt_parity=parity)
    else:
        record["canary_atol"] = tolerance(backend, "fp32", gpu)
    return record


# The TensorRT each tritonserver release is built with (NGC's framework support matrix): a plan
# only deserializes on the TensorRT (major.minor) that built it, and the server's own error for
# a mismatch is a bare "serialization assertion failed" deep in its log.
TENSORRT_OF_TRITON = {"2.51.0": "10.5"}  # 24.10, the release docker/Dockerfile.tensorrt builds plans with


def plan_mismatch(serving: dict, server_version: str) -> str | None:
    """Why a version's plan cannot load on this server, or None (not a plan, or it matches)."""
    if serving.get("backend") != "tensorrt_plan":
        return None
    built = str((serving.get("tensorrt_parity") or {}).get("tensorrt", ""))
    want = TENSORRT_OF_TRITON.get(server_version)
    if want is None:
        log.warning("no known TensorRT version for tritonserver %s: the plan (TensorRT %s) is loaded unchecked",
                    server_version, built or "unknown")
        return None
    if built.split(".")[:2] != want.split("."):
        return (f"the plan was built with TensorRT {built or 'of unknown version'}, but this server (tritonserver "
                f"{server_version}) runs TensorRT {want}: rebuild it in the image of the server's release")
    return None


def read_serving(repo: Path, model: str, version: int) -> dict:
    p = Path(repo) / model / str(version) / SERVING
    return json.loads(p.read_text()) if p.is_file() else {}


def restore_config(repo: Path, model: str, version: int) -> bool:
    """config.pbtxt is per model, the backend per version: before loading an older version
    (rollback, restart), put back the config it was published with. True if it changed."""
    saved = Path(repo) / model / str(version) / CONFIG
    live = Path(repo) / model / CONFIG
    if not saved.is_file() or (live.is_file() and live.read_bytes() == saved.read_bytes()):
        return False
    atomic_write_text(live, saved.read_text())
    return True


def thresholds(repo: Path, model: str, version: int | str) -> dict:
    """The thresholds.json a version was published with (also after it was rejected)."""
    for base in (Path(repo) / model, rejected_dir(repo, model)):
        p = base / str(version) / rundir.THRESHOLDS
        if p.is_file():
            return json.loads(p.read_text())
    raise FileNotFoundError(f"{Path(repo) / model / str(version)}: no thresholds.json for version {version}")


DEFAULT_BACKEND = env.VARS["SOCIAL_TONE_TRITON_BACKEND"].default


def publish(run_dir: Path, repo: Path, model: str = MODEL_NAME, backend: str = DEFAULT_BACKEND, *,
            model_file: Path | None = None, keep: int = 3, max_batch_size: int = MAX_BATCH,
            execution_env: str | None = None, instances: int = 2, gpu: bool = False) -> dict:
    """Copy a run's ONNX graph (or TensorRT plan) and thresholds into the next version dir.

    Returns {version, backend, fallback?}. Nothing is loaded: that is reload's job. keep >= 2,
    so the version before the newest stays on disk for a rollback. A tensorrt_plan publish of
    a run without a plan serves the ONNX graph on the onnxruntime backend, and says so.
    """
    if keep < 2:
        raise ValueError("keep must be >= 2: rollback needs the previous version")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    model_dir = Path(repo) / model
    run_dir = Path(run_dir)
    chosen, backend, fallback = choose_model_file(run_dir, backend)
    model_file = Path(model_file) if model_file is not None else chosen
    cfg = RunDir(run_dir).model_config()
    thr = RunDir(run_dir).thresholds()
    config = render_config(model, backend, cfg["img_dim"], cfg["txt_dim"], cfg["n_labels"], max_batch_size,
                           execution_env, instances, gpu)
    record = {**serving_record(run_dir, backend, gpu), **({"fallback": fallback} if fallback else {})}
    with publishing(repo):  # two runs publishing at once (a drop and retrain-now) get distinct versions
        version = next_version(repo, model)
        with atomic_dir(model_dir / str(version), replace=False) as tmp:
            shutil.copyfile(model_file, tmp / (PLAN if backend == "tensorrt_plan" else ONNX))
            shutil.copyfile(run_dir / rundir.THRESHOLDS, tmp / rundir.THRESHOLDS)
            if backend == "python":
                shutil.copyfile(PYTHON_MODEL, tmp / PY_MODEL_FILE)
            (tmp / CONFIG).write_text(config)
            (tmp / SERVING).write_text(json.dumps(record, indent=2) + "\n")
        atomic_write_text(model_dir / LABELS, "\n".join(thr["label_names"]) + "\n")
        atomic_write_text(model_dir / CONFIG, config)
        prune(repo, model, keep)
    RunDir(run_dir).add_lineage(triton={"model": model, "version": version, "backend": backend, "repo": str(repo)})
    return {"version": version, "backend": backend, **({"fallback": fallback} if fallback else {})}
