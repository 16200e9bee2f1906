"""`tasks ingest`: add a validated drop to the training dataset, versioned with DVC.

<dataset>/drops/<drop_id>/ gets the drop's files (hard links when on the same filesystem,
else copies), atomically. <dataset> is a DVC repo without git (`dvc init --no-scm`);
`drops/` is tracked as one DVC output whose md5 is the dataset version, pushed to a local
remote so every version used for training can be restored (`dvc checkout` from drops.dvc).
Re-ingesting the same drop (a retried task) is a no-op apart from the DVC bookkeeping.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import yaml

from tasks.contract import MANIFEST, MARKER, read_manifest
from tasks.fsutil import atomic_dir

log = logging.getLogger(__name__)
DROPS = "drops"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _dvc_repo(dataset: Path, remote: Path | None):
    from dvc.repo import Repo
    if not (dataset / ".dvc").is_dir():
        Repo.init(str(dataset), no_scm=True)
    repo = Repo(str(dataset))
    with repo.config.edit() as conf:
        conf["core"]["analytics"] = False
        conf["cache"]["type"] = "reflink,hardlink,copy"  # no second copy of the embeddings
        if remote is not None:
            conf["remote"]["local"] = {"url": str(Path(remote).resolve())}
            conf["core"]["remote"] = "local"
    return repo


def ingest(drop: Path, dataset: Path, remote: Path | None = None) -> dict:
    drop, dataset = Path(drop), Path(dataset)
    m = read_manifest(drop)
    dest = dataset / DROPS / m.drop_id
    if dest.exists() and read_manifest(dest).files == m.files:
        log.info("%s already in the dataset (same checksums): nothing to copy", m.drop_id)
    else:
        with atomic_dir(dest) as tmp:
            for name in list(m.files) + [MANIFEST, MARKER]:
                _link_or_copy(drop / name, tmp / name)
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    repo = _dvc_repo(dataset, remote)
    try:
        repo.add(str(dataset / DROPS))
        pushed = repo.push() if remote is not None else 0
    finally:
        repo.close()
    out = yaml.safe_load((dataset / f"{DROPS}.dvc").read_text())["outs"][0]
    drops = sorted(p.name for p in (dataset / DROPS).iterdir() if p.is_dir() and not p.name.startswith("."))
    log.info("dataset %s: %d drops, DVC md5 %s (%d files pushed)", dataset, len(drops), out["md5"], pushed)
    return {"dataset": str(dataset / DROPS), "dvc_md5": out["md5"], "drops": drops, "files_pushed": pushed,
            "rows_added": m.rows}
