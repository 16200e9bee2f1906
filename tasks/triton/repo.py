"""Publishing versions into a Triton model repository: <repo>/<model>/<N>/, written atomically.

A version dir holds the ONNX graph, the per-class thresholds and label names (so clients get
topics, not just logits), and for the CPU backend the Python model. config.pbtxt is
generated for the backend in use and names the label file for the labels output.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tasks.fsutil import atomic_dir, atomic_write_text

BACKENDS = ("python", "onnxruntime", "tensorrt_plan")
PYTHON_MODEL = Path(__file__).with_name("python_model.py")
# The largest request and the largest dynamic batch. Not higher on CPU: with a larger cap the
# batcher stacks two 1024-row requests onto one instance while the other idles (-25% rows/s
# at batch 1024, docs/benchmarks.md). Clients split bigger arrays (TritonClient.infer).
MAX_BATCH = 1024


REJECTED = ".rejected"  # <repo>/.rejected/<model>/<N>/: versions a reload refused (outside Triton's view)


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


def next_version(repo: Path, model: str) -> int:
    """Version numbers are never reused, not even those of rejected versions."""
    used = versions(Path(repo) / model) + versions(rejected_dir(repo, model))
    return max(used, default=0) + 1


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
                  max_batch_size: int = MAX_BATCH, execution_env: str | None = None, instances: int = 1) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    outputs = [f'{{ name: "logits" data_type: TYPE_FP32 dims: [ {n_labels} ] }}']
    if backend == "python":  # only the Python model computes probabilities and thresholded labels
        outputs += [f'{{ name: "probs" data_type: TYPE_FP32 dims: [ {n_labels} ] label_filename: "labels.txt" }}',
                    f'{{ name: "labels" data_type: TYPE_BOOL dims: [ {n_labels} ] }}']
    lines = [f'name: "{name}"',
             f'backend: "{"tensorrt" if backend == "tensorrt_plan" else backend}"',
             f"max_batch_size: {max_batch_size}",
             "input [",
             f'  {{ name: "img_emb" data_type: TYPE_FP32 dims: [ {img_dim} ] }},',
             f'  {{ name: "txt_emb" data_type: TYPE_FP32 dims: [ {txt_dim} ] }}',
             "]",
             "output [\n  " + ",\n  ".join(outputs) + "\n]",
             # On CPU the instances are the parallelism: never hold a request back to grow a
             # batch, merge only what queued while all instances were busy (500 us cost 20-25%
             # rows/s at batch 1 and 64). A GPU gains from waiting a little for a bigger batch.
             f"dynamic_batching {{ max_queue_delay_microseconds: {0 if backend == 'python' else 500} }}",
             f'instance_group [ {{ kind: {"KIND_GPU" if backend == "tensorrt_plan" else "KIND_CPU"} count: {instances} }} ]',
             'version_policy: { latest { num_versions: 1 } }']
    if backend == "python" and execution_env:
        lines.append(f'parameters: {{ key: "EXECUTION_ENV_PATH" value: {{ string_value: "{execution_env}" }} }}')
    return "\n".join(lines) + "\n"


def publish(model_file: Path, run_dir: Path, repo: Path, model: str = "social_tone", backend: str = "python",
            keep: int = 3, max_batch_size: int = MAX_BATCH, execution_env: str | None = None, instances: int = 2) -> int:
    """Copy a run's ONNX graph (or TensorRT plan) and thresholds into the next version dir.

    Returns the new version number. Nothing is loaded: that is reload's job. keep >= 2, so
    the version before the newest stays on disk for a rollback.
    """
    if keep < 2:
        raise ValueError("keep must be >= 2: rollback needs the previous version")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    model_dir = Path(repo) / model
    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "model_config.json").read_text())
    thresholds = json.loads((run_dir / "thresholds.json").read_text())
    version = next_version(repo, model)
    with atomic_dir(model_dir / str(version), replace=False) as tmp:
        shutil.copyfile(model_file, tmp / ("model.plan" if backend == "tensorrt_plan" else "model.onnx"))
        shutil.copyfile(run_dir / "thresholds.json", tmp / "thresholds.json")
        if backend == "python":
            shutil.copyfile(PYTHON_MODEL, tmp / "model.py")
    atomic_write_text(model_dir / "labels.txt", "\n".join(thresholds["label_names"]) + "\n")
    atomic_write_text(model_dir / "config.pbtxt", render_config(model, backend, cfg["img_dim"], cfg["txt_dim"],
                                                                cfg["n_labels"], max_batch_size, execution_env,
                                                                instances))
    for old in versions(model_dir)[:-keep]:
        shutil.rmtree(model_dir / str(old))
    return version
