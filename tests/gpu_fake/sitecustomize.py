"""Loaded at start-up by the Python 3.10 runs of `python3 -m tasks convert-tensorrt` in
tests/test_tensorrt_path.py (this folder first on PYTHONPATH). It stands in for the GPU pieces
only: the driver's device count, the `tensorrt` module, and polygraphy's TensorRT engine and
runner. polygraphy's own Profile and CreateConfig, ONNX Runtime, numpy (at the TensorRT image's
pins) and every line of tasks/ are the real ones.

The fake engine answers with ONNX Runtime's logits (+ FAKE_TRT_DRIFT) and, like TrtRunner,
hands back views of ONE output buffer that the next call overwrites."""
import os
import sys
import types

import numpy as np

trt = types.ModuleType("tensorrt")
trt.__version__ = os.environ.get("FAKE_TRT_VERSION", "10.5.0.18")
sys.modules["tensorrt"] = trt

import polygraphy.backend.trt as ptrt  # noqa: E402  (the real package, TensorRT itself never touched)

import tasks.convert_tensorrt as ct  # noqa: E402

ct.cuda_devices = lambda: (1, "")
DRIFT = np.float32(os.environ.get("FAKE_TRT_DRIFT", "0"))


class FakeEngine:
    def __init__(self, onnx_path, config):
        import onnxruntime as ort
        self.sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.config = config
        shapes = config.profiles[0]  # polygraphy's Profile: input name -> (min, opt, max) shapes
        self.profile = {name: (tuple(s.min), tuple(s.opt), tuple(s.max)) for name, s in shapes.items()}
        self.max_batch = self.profile["img_emb"][2][0]

    def serialize(self):
        return f"fake plan fp16={self.config.fp16} profile={self.profile}".encode()


class FakeRunner:
    def __init__(self, engine):
        self.engine, self.buffer = engine, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, feed):
        n = len(feed["img_emb"])
        if not 1 <= n <= self.engine.max_batch:
            raise RuntimeError(f"batch {n} outside the optimization profile {self.engine.profile}")
        out = self.engine.sess.run(["logits"], feed)[0] + DRIFT
        if self.buffer is None:
            self.buffer = np.empty((self.engine.max_batch, out.shape[1]), np.float32)
        self.buffer[:n] = out
        return {"logits": self.buffer[:n]}


ptrt.network_from_onnx_path = lambda path: path
ptrt.engine_from_network = lambda network, config: FakeEngine(network, config)
ptrt.TrtRunner = FakeRunner
