"""The one Triton client: gRPC (a load sent over HTTP stalls HTTP inference threads).

Used by reload (load, wait, canary, rollback), `tasks score` and the benchmarks. Connection
errors are retried with backoff so a Triton restart in the middle of a task is not fatal.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from tasks import env
from tasks.errors import Unavailable

log = logging.getLogger(__name__)

# The model-repository API can upload and run code (a Python model is code), and shared memory,
# trace and logging can read or write the server's memory and files: the server answers those
# only with this header (TritonServer, compose). Inference, health, metadata, config and
# statistics stay open.
ADMIN_HEADER = "social-tone-admin"  # HTTP; gRPC clients send it as metadata with Triton's prefix
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"
ADMIN_SECRET_ENV = "SOCIAL_TONE_TRITON_ADMIN_SECRET"
RESTRICTED = ("model-repository", "shared-memory", "trace", "logging")


def admin_secret() -> str | None:
    return env.get(ADMIN_SECRET_ENV)


def restricted_args(secret: str) -> list[str]:
    """tritonserver flags that close the RESTRICTED protocols (gRPC) and APIs (HTTP) behind the header."""
    spec = f"{','.join(RESTRICTED)}:{ADMIN_HEADER}={secret}"
    return [f"--grpc-restricted-protocol={spec}", f"--http-restricted-api={spec}"]


class TritonUnavailable(Unavailable):
    """Triton did not answer within the retry budget."""


class TritonRefused(PermissionError):
    """Triton refused a restricted call: the admin secret is missing or wrong."""


@dataclass
class Prediction:
    """Every backend answers logits (tasks/triton/repo.py); tasks.topics.decide turns them into
    probabilities and topics with the thresholds of `version`, the version that answered."""
    logits: np.ndarray
    version: str


class TritonClient:
    def __init__(self, url: str, model: str = env.MODEL_NAME, retries: int = 5, backoff: float = 1.0,
                 timeout: float | None = 120, secret: str | None = None):
        import tritonclient.grpc as grpcclient
        self._g = grpcclient
        self.url, self.model = url, model
        secret = secret or admin_secret()
        self._admin = {GRPC_ADMIN_HEADER: secret} if secret else None  # sent on repository calls only
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.client = grpcclient.InferenceServerClient(url)
        self._max_batch: int | None = None

    def _call(self, what: str, fn, *args, **kwargs):
        """Retry only when the server is unreachable; a server-side error is an answer."""
        from tritonclient.utils import InferenceServerException
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except InferenceServerException as e:
                if "is restricted" in str(e):  # Triton says UNAVAILABLE here too: never retry it
                    raise TritonRefused(f"{what}: Triton at {self.url} refused the call: "
                                        f"{'wrong' if self._admin else 'no'} admin secret "
                                        f"(${ADMIN_SECRET_ENV})") from e
                unreachable = (e.status() or "").endswith("UNAVAILABLE") or "failed to connect" in str(e).lower()
                if not unreachable:
                    raise
                if attempt == self.retries:
                    raise TritonUnavailable(f"{what}: Triton at {self.url} unreachable after "
                                            f"{self.retries + 1} attempts: {e.message()}") from e
                wait = self.backoff * 2 ** attempt
                log.warning("%s: Triton at %s unreachable (attempt %d/%d), retrying in %.1fs",
                            what, self.url, attempt + 1, self.retries + 1, wait)
                time.sleep(wait)

    # -- model repository API ---------------------------------------------------------------
    def load(self, config: str | None = None) -> None:
        """Load (or reload) the model; Triton keeps the old version when the load fails."""
        self._call("load", self.client.load_model, self.model, config=config, headers=self._admin,
                   client_timeout=self.timeout)
        self._max_batch = None

    def unload(self) -> None:
        self._call("unload", self.client.unload_model, self.model, headers=self._admin)

    def ready_versions(self) -> list[int]:
        index = self._call("repository index", self.client.get_model_repository_index, headers=self._admin,
                           as_json=True)
        return sorted(int(m["version"]) for m in index.get("models", [])
                      if m.get("name") == self.model and m.get("state") == "READY" and m.get("version"))

    def is_ready(self, version: int | None = None) -> bool:
        return self._call("ready", self.client.is_model_ready, self.model, "" if version is None else str(version))

    def config(self) -> dict:
        return self._call("config", self.client.get_model_config, self.model, as_json=True)["config"]

    def server_version(self) -> str:
        """The tritonserver release answering (e.g. "2.51.0": NGC 24.10)."""
        return self._call("server metadata", self.client.get_server_metadata).version

    def server_ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready())
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    # -- inference ---------------------------------------------------------------------------
    def max_batch(self) -> int:
        """The model's max_batch_size (0: no batching); asked once per client and load."""
        if self._max_batch is None:
            self._max_batch = int(self.config().get("max_batch_size", 0))
        return self._max_batch

    def infer(self, img: np.ndarray, txt: np.ndarray, version: int | None = None) -> Prediction:
        """Rows beyond the model's max_batch_size go as several requests; the answer still
        comes from one version (asked again if a hot reload landed in between)."""
        step = self.max_batch() or len(img)
        if len(img) <= step:
            return self._infer(img, txt, version)
        for _ in range(3):
            parts = [self._infer(img[s:s + step], txt[s:s + step], version) for s in range(0, len(img), step)]
            if len({p.version for p in parts}) == 1:
                return Prediction(np.concatenate([p.logits for p in parts]), parts[0].version)
        raise RuntimeError(f"{self.model}: versions changed under every attempt to score {len(img)} rows "
                           f"in requests of {step}; reloads are too frequent")

    def _infer(self, img, txt, version) -> Prediction:
        g = self._g
        inputs = [g.InferInput("img_emb", list(img.shape), "FP32"), g.InferInput("txt_emb", list(txt.shape), "FP32")]
        inputs[0].set_data_from_numpy(np.ascontiguousarray(img, dtype=np.float32))
        inputs[1].set_data_from_numpy(np.ascontiguousarray(txt, dtype=np.float32))
        r = self._call("infer", self.client.infer, self.model, inputs,
                       model_version="" if version is None else str(version),
                       outputs=[g.InferRequestedOutput("logits")], client_timeout=self.timeout)
        return Prediction(r.as_numpy("logits"), r.get_response().model_version)

    def label_names(self, n_labels: int, img_dim: int, txt_dim: int) -> list[str]:
        """Topic names from the model's labels.txt, through the classification extension."""
        g = self._g
        inputs = [g.InferInput("img_emb", [1, img_dim], "FP32"), g.InferInput("txt_emb", [1, txt_dim], "FP32")]
        inputs[0].set_data_from_numpy(np.zeros((1, img_dim), np.float32))
        inputs[1].set_data_from_numpy(np.zeros((1, txt_dim), np.float32))
        r = self._call("labels", self.client.infer, self.model, inputs,
                       outputs=[g.InferRequestedOutput("logits", class_count=n_labels)])
        names = [""] * n_labels
        for entry in r.as_numpy("logits").reshape(-1):  # b"score:index:label"
            _, idx, name = entry.decode().split(":", 2)
            names[int(idx)] = name
        return names

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
