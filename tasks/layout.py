"""The owner of the drop and dataset layouts (standard library only: the DAG side names these
paths at parse time; tasks/contract.py reads and writes what is in them).

  <drop_id>/                 a drop (docs/data-contract.md)
    manifest.json, img_emb.npy, txt_emb.npy, labels.npy, ids.npy, timestamps.npy
    _SUCCESS                 written last; a drop without it is incomplete
  <dataset>/                 the DVC-versioned training data (tasks/ingest.py)
    schema.json              dims and label names every later drop must match
    drops/<drop_id>/         the ingested drops, one DVC output
    drops.dvc
"""
from __future__ import annotations

import re
from pathlib import Path

MANIFEST, MARKER = "manifest.json", "_SUCCESS"
IMG, TXT, LABELS, IDS, TIMESTAMPS = "img_emb.npy", "txt_emb.npy", "labels.npy", "ids.npy", "timestamps.npy"
DATA_FILES = (IMG, TXT, LABELS, IDS, TIMESTAMPS)
# A drop id becomes a directory name under several roots: keep it boring (use fullmatch:
# `$` would also match before a trailing newline).
DROP_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
DROPS, SCHEMA = "drops", "schema.json"


def dataset_drops(dataset: Path) -> Path:
    """<dataset>/drops: what training reads and DVC versions."""
    return Path(dataset) / DROPS


def dataset_schema(dataset: Path) -> Path:
    return Path(dataset) / SCHEMA


def dvc_file(dataset: Path) -> Path:
    return Path(dataset) / f"{DROPS}.dvc"
