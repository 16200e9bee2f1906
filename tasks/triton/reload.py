"""Hot reload on Triton (EXPLICIT model control) with a canary and rollback.

reload():
  1. load_model over gRPC. The config's version policy is `latest 1`, so Triton loads the
     newest version dir, swaps it in once ready and only then unloads the old one: the old
     version serves throughout. A failed load leaves the old version serving.
  2. wait until the new version reports READY;
  3. canary: the run's check rows (check_rows.npz, the rows ONNX and TensorRT parity used)
     through Triton (pinned to the new version) and through ONNX Runtime on the run's own
     model.onnx (what the export gate checked); logits within the
     version's tolerance (its serving.json: per backend and precision, the plan's own parity
     tolerance for TensorRT), labels identical outside the tolerance band;
  4. on any failure: the version dir is moved to <repo>/.rejected/<model>/<N>/ with the reason,
     the model is loaded again (now resolving to the previous version), and CheckFailed is
     raised. Rejected numbers are never reused.

rollback() is the same step 4 for an operator: retire the serving version, serve the one before.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tasks.errors import CheckFailed
from tasks.parity import compare_logits
from tasks.rundir import RunDir
from tasks.triton import repo as trepo
from tasks.triton.client import TritonClient

log = logging.getLogger(__name__)


class ReloadFailed(CheckFailed):
    """The new version did not load or failed its canary; the previous one serves."""


def _reference(onnx_path: Path, img: np.ndarray, txt: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"img_emb": img, "txt_emb": txt})[0]


def canary_tolerance(repo: Path, model: str, version: int) -> float:
    """The tolerance the version was published with (serving.json), else the one of a version
    published before serving.json existed (the Python backend's)."""
    from tasks.parity import tolerance
    record = trepo.read_serving(repo, model, version)
    return float(record.get("canary_atol", tolerance(record.get("backend", "python"))))


def wait_ready(client: TritonClient, version: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.is_ready(version):
            return True
        time.sleep(0.2)
    return False


def _restore_previous(client: TritonClient, repo: Path, model: str, version: int, reason: str,
                      timeout: float) -> int | None:
    """Retire `version` and make Triton serve the newest remaining version (None: nothing left)."""
    where = trepo.reject(repo, model, version, reason)
    log.error("version %d rejected (%s); moved to %s", version, reason, where)
    remaining = trepo.versions(Path(repo) / model)
    if not remaining:
        client.unload()
        log.error("no earlier version to roll back to; %s unloaded", model)
        return None
    prev = remaining[-1]
    trepo.mark_good(repo, model, prev)
    if trepo.restore_config(repo, model, prev) or not client.is_ready(prev):
        client.load()
    if not wait_ready(client, prev, timeout):
        raise ReloadFailed(f"rollback of {model} to version {prev} did not become ready in {timeout}s")
    log.warning("rolled back %s to version %d", model, prev)
    return prev


def reload(repo: Path, model: str, *, url: str, run_dir: Path, n_canary: int | None = None,
           atol: float | None = None, timeout: float = 120, retries: int = 5,
           expect_version: int | None = None) -> dict:
    """Load the newest published version of `model`; canary it against `run_dir`'s ONNX graph
    on the first n_canary of the run's check rows (all of them by default)."""
    repo, run = Path(repo), RunDir(run_dir)
    published = trepo.versions(repo / model)
    if not published:
        raise FileNotFoundError(f"{repo / model}: no published version to load")
    new = published[-1]
    if expect_version is not None and new != expect_version:
        # a retried task after a rollback: never canary someone else's version against our run
        raise ReloadFailed(f"{model}: expected to load version {expect_version} but the newest published "
                           f"version is {new} (rejected or superseded); nothing changed")
    thresholds = np.asarray(run.thresholds()["thresholds"], dtype=np.float32)
    if atol is None:
        atol = canary_tolerance(repo, model, new)
    client = TritonClient(url, model, retries=retries, timeout=timeout)
    before = client.ready_versions()
    log.info("%s: serving %s, loading version %d", model, before or "nothing", new)
    t0 = time.monotonic()
    from tritonclient.utils import InferenceServerException

    def fail(reason: str) -> ReloadFailed:
        prev = _restore_previous(client, repo, model, new, reason, timeout)
        return ReloadFailed(f"{model} version {new}: {reason}; "
                            + (f"version {prev} serves" if prev else "nothing serves"))

    if why := trepo.plan_mismatch(trepo.read_serving(repo, model, new), client.server_version()):
        raise fail(why)
    try:
        client.load()
    except InferenceServerException as e:
        raise fail(f"load failed: {e.message()}") from e
    if not wait_ready(client, new, timeout):
        raise fail(f"not ready after {timeout}s")
    load_s = time.monotonic() - t0
    img, txt, digest, source = run.check_rows(n_canary)
    try:
        served = client.infer(img, txt, version=new)
    except InferenceServerException as e:
        raise fail(f"canary request failed: {e.message()}") from e
    report = {**compare_logits(served.logits, _reference(run.onnx, img, txt), thresholds, atol),
              "rows_from": source, "rows_sha256": digest}
    log.info("canary on %d rows: max |diff| %.2e, %d rows with different labels",
             report["rows"], report["max_abs_diff"], report["label_mismatch_rows"])
    if not report["ok"]:
        raise fail(f"canary mismatch vs ONNX Runtime (max |diff| {report['max_abs_diff']:.2e}, "
                   f"{report['label_mismatch_rows']} rows with different labels)")
    trepo.mark_good(repo, model, new)
    return {"model": model, "version": new, "previous": before, "load_seconds": round(load_s, 2),
            "canary": report}


def rollback(repo: Path, model: str, url: str, reason: str = "manual rollback", timeout: float = 120) -> dict:
    client = TritonClient(url, model, timeout=timeout)
    serving = client.ready_versions()
    if not serving:
        raise ReloadFailed(f"{model}: nothing is serving, nothing to roll back")
    prev = _restore_previous(client, Path(repo), model, serving[-1], reason, timeout)
    return {"model": model, "retired": serving[-1], "version": prev}
