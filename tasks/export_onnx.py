"""`tasks export-onnx`: ONNX export (torch.export path) gated by a parity check on real rows.

Parity: on the run's check rows (check_rows.npz: test rows train wrote, the same rows the
TensorRT parity and the Triton canary use), ONNX Runtime's logits must be within --atol of PyTorch's, and
the thresholded labels must be identical wherever the logit is farther than atol from the
threshold (see tasks/parity.py). On failure nothing is written but the report: a model that
does not match never reaches serving.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from tasks import model as mdl, tracking
from tasks.errors import CheckFailed
from tasks.parity import ATOL, compare_logits
from tasks.fsutil import sha256_file
from tasks.rundir import RunDir

log = logging.getLogger(__name__)
INPUTS, OUTPUT = ("img_emb", "txt_emb"), "logits"
MAX_BATCH = 1 << 16
# What the serving side reads: Triton 24.10's onnxruntime backend is ONNX Runtime 1.19, which
# loads IR <= 10 (a newer torch/onnx may emit IR 11, and CPU tests with a newer ORT stay green).
OPSET, IR_VERSION = 18, 10


class ParityError(CheckFailed):
    """The exported graph does not reproduce the PyTorch model."""


def pin_ir(path: Path, ir_version: int = IR_VERSION) -> int:
    """Write the graph at `ir_version` when the exporter emitted a newer one (the ops are opset
    18's either way; onnx's checker and the parity run then vouch for the file). Returns the IR
    the exporter emitted."""
    import onnx
    m = onnx.load(str(path))
    emitted = m.ir_version
    if emitted > ir_version:
        m.ir_version = ir_version
        onnx.save(m, str(path))
    return emitted


def export(model: mdl.FusionMLP | mdl.Ensemble, path: Path, opset: int = OPSET) -> None:
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = (torch.zeros(2, model.cfg.img_dim), torch.zeros(2, model.cfg.txt_dim))
    with warnings.catch_warnings():
        # both inputs share the one "batch" axis on purpose; torch says so on every export
        warnings.filterwarnings("ignore", message=r"# The axis name: batch will not be used")
        program = torch.onnx.export(model.eval(), example, input_names=list(INPUTS), output_names=[OUTPUT],
                                    dynamic_shapes={"img_emb": {0: batch}, "txt_emb": {0: batch}},
                                    opset_version=opset, dynamo=True, verbose=False)
        program.save(str(path))
    pin_ir(path)


def check_parity(onnx_path: Path, model: mdl.FusionMLP | mdl.Ensemble, thresholds: np.ndarray, img: np.ndarray,
                 txt: np.ndarray, atol: float = ATOL[("onnx", "fp32")]) -> dict:
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(str(onnx_path), full_check=True)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT], {"img_emb": img, "txt_emb": txt})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(img), torch.from_numpy(txt)).numpy()
    return compare_logits(got, want, thresholds, atol)


def export_onnx(run_dir: Path, out: Path | None = None, *, opset: int = OPSET, atol: float = ATOL[("onnx", "fp32")],
                tracking_uri: str | None = None) -> dict:
    rd = RunDir(run_dir)
    run_dir, out = rd.path, Path(out or rd.onnx)
    model = mdl.load(run_dir)
    thr = np.asarray(rd.thresholds()["thresholds"], dtype=np.float32)
    summary = rd.summary()
    img, txt, digest, source = rd.check_rows()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".onnx-") as tmp:
        tmp_path = Path(tmp) / out.name
        export(model, tmp_path, opset)
        report = {**check_parity(tmp_path, model, thr, img, txt, atol), "rows_from": source, "rows_sha256": digest,
                  "opset": opset}
        rd.write_parity_report(report)
        log.info("ONNX parity on %d %s rows: max |diff| %.2e (atol %.0e), %d rows with different labels",
                 report["rows"], source, report["max_abs_diff"], atol, report["label_mismatch_rows"])
        if not report["ok"]:
            raise ParityError(f"{out}: ONNX parity failed (max |diff| {report['max_abs_diff']:.2e}, "
                              f"{report['label_mismatch_rows']} rows with different labels); not written")
        tmp_path.replace(out)
    uri = tracking_uri or None
    run_id = tracking.resume_id(summary, uri)
    with tracking.run(uri, run_name="export-onnx", parent_id=run_id) as active:
        if active is not None:
            import mlflow
            import onnx
            from mlflow.models import infer_signature
            example = {"img_emb": img[:2], "txt_emb": txt[:2]}
            sig = infer_signature(example, {OUTPUT: model(torch.from_numpy(img[:2]), torch.from_numpy(txt[:2]))
                                            .detach().numpy()})
            # CPU provider: MLflow's default list starts with CUDA, which warns on every load here
            info = mlflow.onnx.log_model(onnx.load(str(out)), name="onnx", signature=sig, input_example=example,
                                         onnx_execution_providers=["CPUExecutionProvider"])
            rd.write_mlflow_model({"model_uri": info.model_uri, "run_id": active.info.run_id, "tracking_uri": uri})
            tracking.log_metrics(active, {"onnx_parity_max_abs_diff": report["max_abs_diff"]})
    rd.add_lineage(export={"onnx_sha256": sha256_file(out), "mlflow_run_id": active.info.run_id if active else None,
                           "model_uri": rd.mlflow_model().get("model_uri")})
    return {**report, "onnx": str(out)}
