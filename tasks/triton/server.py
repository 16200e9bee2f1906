"""A CPU tritonserver managed as a process: the one from PyPI's nvidia-pytriton wheel.

Bound to 127.0.0.1, EXPLICIT model control. Two backends: Triton's C++ onnxruntime backend
(the default; the wheel has none, docker/build-ort-backend.sh builds it into this venv) and the
Python backend assembled from the wheel's files (the fallback, SOCIAL_TONE_TRITON_BACKEND=python).
The model-repository API (and shared memory, trace, logging) answers only clients that send
the admin secret (tasks/triton/client.py): $SOCIAL_TONE_TRITON_ADMIN_SECRET, or a random one
generated here when none is set (then only this process's caller knows it). Used by the tests,
the benchmarks, the embedded demo and the team stack's CPU image; a GPU server uses the NGC
image with the same repository layout.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from tasks import env


def _pytriton_dir() -> Path:
    import pytriton  # noqa: F401  (import only to find the wheel's files)
    return Path(pytriton.__file__).parent / "tritonserver"


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the process that started it dies, so a
    killed test run or `tasks serve` never leaves an orphaned tritonserver behind."""
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# where docker/build-ort-backend.sh puts Triton's onnxruntime backend: in the venv it was built for
ORT_BACKEND = Path(sys.prefix) / "triton-backends" / "onnxruntime"


class BackendMissing(RuntimeError):
    """The configured backend cannot be offered by this server."""


def backend_dir(dest: Path) -> Path:
    """backends/python/ with the backend library, its utils and the stub for this Python, and
    backends/onnxruntime/ (a link to the built C++ backend). Without that build, only the
    fallback setting may start a server: a model published for onnxruntime would not load."""
    if (ORT_BACKEND / "libtriton_onnxruntime.so").is_file():
        link = dest / "onnxruntime"
        dest.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(ORT_BACKEND, target_is_directory=True)
    elif env.get("SOCIAL_TONE_TRITON_BACKEND") == "onnxruntime":
        raise BackendMissing(f"Triton's onnxruntime backend is not built for this Python ({ORT_BACKEND} is missing): "
                             f"run docker/build-ort-backend.sh {sys.prefix} (make venv does), or serve through "
                             "the Python backend instead: SOCIAL_TONE_TRITON_BACKEND=python")
    src = _pytriton_dir()
    py = dest / "python"
    py.mkdir(parents=True, exist_ok=True)
    for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copyfile(src / "backends" / "python" / f, py / f)
    stub = py / "triton_python_backend_stub"
    shutil.copyfile(src / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" /
                    "triton_python_backend_stub", stub)
    stub.chmod(0o755)
    return dest


class TritonServer:
    def __init__(self, model_repo: Path, workdir: Path, http_port: int | None = None, grpc_port: int | None = None,
                 metrics_port: int | None = None, address: str = "127.0.0.1", admin_secret: str | None = None):
        from tasks.triton.client import admin_secret as configured
        self.model_repo, self.workdir, self.address = Path(model_repo), Path(workdir), address
        self.admin_secret = admin_secret or configured() or secrets.token_urlsafe(32)
        self.http_port, self.grpc_port = http_port or free_port(), grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "tritonserver.log"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 60) -> "TritonServer":
        from tasks.triton.client import restricted_args
        src = _pytriton_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.model_repo.mkdir(parents=True, exist_ok=True)
        backends = backend_dir(self.workdir / "backends")
        proc_env = dict(os.environ)
        # the stub links libpython and the CUDA runtime the wheel ships (unused on CPU)
        libs = [sysconfig.get_config_var("LIBDIR"), str(src.parent.parent / "nvidia_pytriton.libs")]
        proc_env["LD_LIBRARY_PATH"] = ":".join(libs + [proc_env.get("LD_LIBRARY_PATH", "")])
        # the Python stub would write __pycache__ into version dirs, as this process's user:
        # then the task that publishes and prunes versions could not remove them
        proc_env["PYTHONDONTWRITEBYTECODE"] = "1"
        # the Python backend's model reads its settings through this package (tasks/env.py)
        package_root = str(Path(__file__).resolve().parents[2])
        proc_env["PYTHONPATH"] = ":".join(p for p in (package_root, proc_env.get("PYTHONPATH")) if p)
        cmd = [str(src / "bin" / "tritonserver"), f"--model-repository={self.model_repo}",
               f"--backend-directory={backends}", "--model-control-mode=explicit",
               f"--http-address={self.address}", f"--grpc-address={self.address}",
               f"--metrics-address={self.address}",
               f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
               f"--metrics-port={self.metrics_port}", "--log-verbose=0", "--exit-timeout-secs=10",
               *restricted_args(self.admin_secret)]
        cmd += env.get("SOCIAL_TONE_TRITON_EXTRA_ARGS").split()  # e.g. --backend-config=...
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=proc_env,
                                     start_new_session=True, preexec_fn=die_with_parent)
        import tritonclient.grpc as grpcclient
        client = grpcclient.InferenceServerClient(self.grpc_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(Exception):
                if client.is_server_ready():
                    return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"tritonserver not ready after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
