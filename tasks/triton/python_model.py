"""Triton Python-backend model: ONNX Runtime on CPU, the fallback to Triton's C++ onnxruntime
backend (SOCIAL_TONE_TRITON_BACKEND=python).

Copied into every published version as model.py. Runs in Triton's stub process with the
execution environment named by EXECUTION_ENV_PATH (numpy + onnxruntime) and this package on
its path (tasks/triton/server.py puts it there). Like every other backend's config it answers
`logits` only; clients apply the version's thresholds.
"""
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from tasks import env, rundir


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(env.get("SOCIAL_TONE_ORT_THREADS"))
        self.session = ort.InferenceSession(os.path.join(here, rundir.ONNX), opts,
                                            providers=["CPUExecutionProvider"])

    def execute(self, requests):
        # The dynamic batcher hands over several requests at once: one ORT call for all of them.
        imgs = [pb_utils.get_input_tensor_by_name(r, "img_emb").as_numpy() for r in requests]
        txts = [pb_utils.get_input_tensor_by_name(r, "txt_emb").as_numpy() for r in requests]
        img, txt = (imgs[0], txts[0]) if len(requests) == 1 else (np.concatenate(imgs), np.concatenate(txts))
        logits = self.session.run(["logits"], {"img_emb": img, "txt_emb": txt})[0]
        responses, start = [], 0
        for rows in (len(a) for a in imgs):
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("logits", logits[start:start + rows])]))
            start += rows
        return responses
