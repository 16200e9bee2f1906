import json
import os
import secrets
from pathlib import Path

import numpy as np
import pytest

from tasks import contract as c
from tasks.fsutil import sha256_file

os.environ.setdefault("MLFLOW_TRACKING_URI", "none")  # tests that track pass their own sqlite URI
# Triton's model-repository API is closed behind this secret (tasks/triton/client.py); the
# servers the tests start and the project's own reload share it, as in production.
os.environ.setdefault("SOCIAL_TONE_TRITON_ADMIN_SECRET", secrets.token_urlsafe(24))


def make_drop(path: Path, rows: int = 40, img_dim: int = 8, txt_dim: int = 6, n_labels: int = 4,
              seed: int = 0, labeled: bool = True, timestamps: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    c.write_drop(path, path.name, rng.standard_normal((rows, img_dim)).astype(np.float32),
                 rng.standard_normal((rows, txt_dim)).astype(np.float32),
                 np.array([f"post-{seed}-{i}" for i in range(rows)]),
                 labels=(rng.random((rows, n_labels)) < 0.3).astype(np.uint8) if labeled else None,
                 timestamps=np.arange(rows, dtype=np.int64) if timestamps else None, source="test")
    return path


def trained_run(root: Path, rows: int, seed: int, epochs: int = 1, name: str = "run") -> Path:
    """A synthetic drop root/d, and a trained + ONNX-exported run dir on it (tracking off)."""
    from tasks import synth
    from tasks.export_onnx import export_onnx
    from tasks.train import TrainConfig, train
    if not (root / "d").exists():
        synth.write_labeled(root / "d", "d", rows=rows, seed=seed)
    train([root / "d"], root / name, TrainConfig(max_epochs=epochs, seed=seed), tracking_uri="none")
    export_onnx(root / name, tracking_uri="none")
    return root / name


def resign(drop: Path) -> None:
    """Recompute the manifest's checksums after a test tampers with a file on purpose,
    so validation reaches the check under test instead of stopping at the checksum."""
    m = json.loads((drop / c.MANIFEST).read_text())
    for name in m["files"]:
        if (drop / name).exists():
            m["files"][name]["sha256"] = sha256_file(drop / name)
    (drop / c.MANIFEST).write_text(json.dumps(m))


def tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_symlink(), sha256_file(p) if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def drop(tmp_path):
    return make_drop(tmp_path / "drop-1")

# tests/airflow run in the Airflow venv (`make test-airflow`), not with the task code's venv
collect_ignore = ["airflow"]
