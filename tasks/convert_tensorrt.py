"""`tasks convert-tensorrt`: a TensorRT plan from the ONNX graph, with a parity check against ORT.

On a host without a CUDA device or without TensorRT it raises Skipped (CLI exit code 5,
"skipped: no GPU"; the DAG maps it to an Airflow skip) and writes a report saying why. It
never crashes there. Run it in the GPU image (docker/Dockerfile.tensorrt, NGC TensorRT 24.10):
a plan only loads on the TensorRT version that built it, so it must match Triton's release.

Built with polygraphy: an optimization profile min 1 / opt --opt-batch (clamped to max) /
max --max-batch (= Triton's max_batch_size), FP16 optional. Parity: the plan's logits against
ONNX Runtime's on the run's check rows, the rows ONNX parity and the canary use (tasks/parity.py rule and tolerance per precision). The report
(tensorrt.json beside the plan) records the tolerance; publish carries it into the version
dir, and the Triton canary uses the same one.
"""
from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from tasks.errors import CheckFailed, Skipped
from tasks.fsutil import atomic_write_bytes, atomic_write_json
from tasks.parity import compare_logits, tolerance
from tasks.triton.repo import MAX_BATCH
from tasks.rundir import TENSORRT_REPORT as REPORT
from tasks.rundir import RunDir

log = logging.getLogger(__name__)


class TensorRTParityError(Skipped):
    """A plan that disagrees with ONNX Runtime is not written, and the step ends as skipped
    (exit 5): publish then serves the ONNX graph on onnxruntime, with this reason in serving.json."""


def cuda_devices() -> tuple[int, str]:
    """(CUDA devices visible through the driver API, why none when 0). A container started
    without the GPU (no --gpus, no toolkit) and a host without a driver read differently."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no CUDA driver in this container (libcuda.so.1 not found)"
    count = ctypes.c_int(0)
    for call, args in (("cuInit", (0,)), ("cuDeviceGetCount", (ctypes.byref(count),))):
        if (err := getattr(cuda, call)(*args)) != 0:
            name = ctypes.c_char_p()
            cuda.cuGetErrorName(err, ctypes.byref(name))
            return 0, f"{call} failed with CUDA error {err} ({(name.value or b'?').decode()})"
    return count.value, "" if count.value else "the driver sees no CUDA device"


def why_skip() -> str | None:
    count, why = cuda_devices()
    if count == 0:
        return f"no GPU: {why}"
    try:
        import tensorrt  # noqa: F401
        import polygraphy  # noqa: F401
    except ImportError as e:
        return f"TensorRT is not installed here ({e.name}); use the image from docker/Dockerfile.tensorrt"
    return None


class GpuMissing(CheckFailed):
    """A GPU was promised (SOCIAL_TONE_GPU=true: --require-gpu) and this container has none:
    a failure to fix (the container toolkit, --gpus), not a skip that serves ONNX on a GPU Triton."""


def require_gpu(out: Path, required: bool = False) -> None:
    """Raise Skipped (GpuMissing when `required`), leaving a report beside `out` saying why,
    unless TensorRT can run here."""
    if (reason := why_skip()) is not None:
        atomic_write_json(Path(out).parent / REPORT, {"skipped": not required, "reason": reason})
        if required:
            raise GpuMissing(f"SOCIAL_TONE_GPU is true but {reason}")
        raise Skipped(reason)


def profile_batches(max_batch: int, opt_batch: int) -> tuple[int, int, int]:
    """(min, opt, max) batch of the optimization profile; TensorRT refuses opt > max."""
    if max_batch < 1 or opt_batch < 1:
        raise ValueError(f"batch sizes must be >= 1 (max {max_batch}, opt {opt_batch})")
    return 1, min(opt_batch, max_batch), max_batch


def infer_batched(infer, img: np.ndarray, txt: np.ndarray, max_batch: int) -> np.ndarray:
    """Logits for every row, in requests of at most max_batch rows. Each answer is copied:
    polygraphy's runner hands back views of buffers it reuses on the next call."""
    parts = [np.array(infer({"img_emb": img[s:s + max_batch], "txt_emb": txt[s:s + max_batch]})["logits"], copy=True)
             for s in range(0, len(img), max_batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def convert(run_dir: Path, *, onnx_path: Path | None = None, out: Path | None = None, max_batch: int = MAX_BATCH,
            opt_batch: int = 256, fp16: bool = False, atol: float | None = None, require: bool = False) -> dict:
    """Build the plan from the run's ONNX graph; parity on the run's check rows (check_rows.npz)."""
    rd = RunDir(run_dir)
    out, onnx_path = Path(out or rd.plan), Path(onnx_path or rd.onnx)
    report_path = out.parent / REPORT
    batches = profile_batches(max_batch, opt_batch)
    require_gpu(out, require)  # before reading anything: a CPU host has nothing to do
    import onnxruntime as ort
    import tensorrt as trt
    from polygraphy.backend.trt import (CreateConfig, Profile, TrtRunner, engine_from_network,
                                        network_from_onnx_path)
    img, txt, digest, source = rd.check_rows()
    precision = "fp16" if fp16 else "fp32"
    atol = atol if atol is not None else tolerance("tensorrt_plan", precision)
    profile = Profile()
    for name, dim in (("img_emb", img.shape[1]), ("txt_emb", txt.shape[1])):
        profile.add(name, *((b, dim) for b in batches))
    engine = engine_from_network(network_from_onnx_path(str(onnx_path)),
                                 config=CreateConfig(fp16=fp16, profiles=[profile]))
    with TrtRunner(engine) as runner:
        got = infer_batched(runner.infer, img, txt, max_batch)
    want = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"img_emb": img, "txt_emb": txt})[0]
    thr = np.asarray(rd.thresholds()["thresholds"], dtype=np.float32)
    report = {**compare_logits(got, want, thr, atol), "rows_from": source, "rows_sha256": digest, "skipped": False, "fp16": fp16, "precision": precision,
              "tensorrt": trt.__version__, "profile": list(batches)}
    if not report["ok"]:
        report.update(skipped=True, reason=f"TensorRT {precision} parity failed (max |diff| {report['max_abs_diff']:.2e}"
                      f" > {atol:.0e}, {report['label_mismatch_rows']} rows with different labels); plan not written")
    atomic_write_json(report_path, report)
    if not report["ok"]:
        raise TensorRTParityError(f"{out}: {report['reason']}")
    atomic_write_bytes(out, bytes(engine.serialize()))
    log.info("TensorRT plan %s: parity max |diff| %.2e on %d rows", out, report["max_abs_diff"], report["rows"])
    return {**report, "plan": str(out)}
