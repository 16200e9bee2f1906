"""`tasks ingest`: add a validated drop to the training dataset, versioned with DVC.

Ingest takes only what was validated:
- the destination is <dataset>/drops/<the drop directory's name>, a valid drop id (never the
  manifest's say-so: it must equal the name), and an existing drop of that id with other
  content is refused, never replaced;
- the manifest must be the one validation read (its sha256 in the validation report), and
  every data file is copied (never linked: the producer may hold a link or a handle) and
  hashed as it is copied; the copy must match the manifest, so what is trained on is exactly
  what was validated;
- files are opened without following links and without blocking (no FIFO can hang it);
- the marker is ingest's own, not the producer's file;
- one schema per dataset (<dataset>/schema.json, written by the first ingest): dims and label
  names must match (validation checks this too, with the way out in its message).
<dataset> is a DVC repo without git (`dvc init --no-scm`); `drops/` is tracked as one DVC
output whose md5 is the dataset version, pushed to a local remote. Re-ingesting the same drop
(a retried task) is a no-op apart from the DVC bookkeeping.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import yaml

from tasks import env
from tasks.contract import (MANIFEST, MARKER, ContractError, Manifest, open_regular, read_manifest,
                            read_manifest_with_digest, valid_drop_id)
from tasks.fsutil import atomic_dir, atomic_write_json
from tasks.layout import DROPS, SCHEMA

log = logging.getLogger(__name__)


def _copy_verified(src: Path, dst: Path, sha256: str | None) -> None:
    """Copy through a no-follow, non-blocking fd, hashing what is copied."""
    h = hashlib.sha256()
    fd = open_regular(src)
    with os.fdopen(fd, "rb") as fin, open(dst, "xb") as fout:
        while block := fin.read(1 << 22):
            h.update(block)
            fout.write(block)
    if sha256 is not None and h.hexdigest() != sha256:
        raise ContractError(f"{src}: changed since it was validated (sha256 of the copy differs from the "
                            "manifest); nothing was ingested")


def schema_of(m: Manifest) -> dict:
    return {"img_dim": m.img_dim, "txt_dim": m.txt_dim, "label_names": m.label_names}


def _check_schema(dataset: Path, m: Manifest) -> None:
    path = dataset / SCHEMA
    if not path.is_file():
        return
    want = json.loads(path.read_text())
    if want != schema_of(m):
        raise ContractError(f"{m.drop_id}: its dims or label names differ from the dataset's {path}; "
                            "a new label set starts a new dataset (docs/data-contract.md)")


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


def ingest(drop: Path, dataset: Path, *, remote: Path | None = None, manifest_sha256: str | None = None) -> dict:
    drop, dataset = Path(drop), Path(dataset)
    if not valid_drop_id(drop.name):
        raise ContractError(f"{drop}: {drop.name!r} is not a valid drop id")
    m, digest = read_manifest_with_digest(drop)
    if m.drop_id != drop.name:
        raise ContractError(f"{drop / MANIFEST}: drop_id {m.drop_id!r} differs from the directory name")
    if manifest_sha256 is not None and digest != manifest_sha256:
        raise ContractError(f"{drop / MANIFEST}: changed since it was validated; nothing was ingested")
    if m.kind != "labeled":
        raise ContractError(f"{drop}: only labeled drops go into the training dataset")
    for name in m.files:  # a name is a file of this drop: nothing outside it is read, nothing outside dest written
        if name in ("", ".", "..", MANIFEST, MARKER) or Path(name).name != name or "\\" in name:
            raise ContractError(f"{drop / MANIFEST}: lists {name!r}, which is not a file name inside the drop; "
                                "nothing was ingested")
    _check_schema(dataset, m)
    dest = dataset / DROPS / drop.name  # a valid id has no separator and no leading '.': a direct child
    if dest.exists():
        if read_manifest(dest).files != m.files:
            raise ContractError(f"{dest}: a drop with this id is already in the dataset with other content; "
                                "send the new data under a new drop id")
        log.info("%s already in the dataset (same checksums): nothing to copy", m.drop_id)
    else:
        with atomic_dir(dest, replace=False) as tmp:
            for name in sorted(m.files):
                _copy_verified(drop / name, tmp / name, m.files[name])
            _copy_verified(drop / MANIFEST, tmp / MANIFEST, digest)
            (tmp / MARKER).write_text("")  # ingest's own marker
        if not (dataset / SCHEMA).is_file():
            atomic_write_json(dataset / SCHEMA, schema_of(m))
    os.environ.setdefault("DVC_NO_ANALYTICS", env.get("DVC_NO_ANALYTICS"))  # read by DVC itself
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
