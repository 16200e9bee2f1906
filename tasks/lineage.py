"""Lineage: which data a model was trained on, and getting exactly that data back.

train records `data` in the run's lineage.json (tasks/rundir.py): every drop with the sha256
of its manifest (which holds the sha256 of each data file), the data version, and the DVC md5
of the dataset's `drops/` folder when the DVC-tracked state is exactly the drops trained on
(checked file by file against DVC's listing). Later steps add their hops (MLflow runs, ONNX
sha256, Triton version, registry version).

DVC keeps every version's listing and files in its cache (and the pushed remote), even though
`drops.dvc` (no git: `dvc init --no-scm`) only names the latest. `checkout` rebuilds a
version from that listing with DVC's own checkout (dvc_data), into any folder:

    python -m tasks data checkout --model-dir MODEL_DIR --dataset DATASET --out DIR
    python -m tasks train --data DIR ...        # the same rows, the same data version
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from tasks import contract as c
from tasks.layout import DROPS
from tasks.rundir import LINEAGE, RunDir

log = logging.getLogger(__name__)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def dvc_listing(dataset: Path, md5: str) -> list[dict] | None:
    """DVC's listing of a directory version ([{relpath, md5}]) from the dataset's cache."""
    name = md5.removesuffix(".dir")
    p = Path(dataset) / ".dvc" / "cache" / "files" / "md5" / name[:2] / (name[2:] + ".dir")
    return json.loads(p.read_text()) if p.is_file() else None


def dvc_md5(drops: list[Path]) -> tuple[str | None, str]:
    """(md5, why) of the DVC version whose `drops/` holds these drops with these very manifests
    (and perhaps older drops a window left out)."""
    folder = Path(drops[0]).parent
    dvc_file = folder.parent / f"{folder.name}.dvc"
    if folder.name != DROPS or any(Path(d).parent != folder for d in drops) or not dvc_file.is_file():
        return None, f"{folder} is not a DVC-tracked dataset folder"
    import yaml
    md5 = yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]
    listing = dvc_listing(folder.parent, md5)
    if listing is None:
        return None, f"DVC listing {md5} not in {folder.parent}/.dvc/cache"
    manifests = {e["relpath"].split("/")[0]: e["md5"] for e in listing if e["relpath"].endswith("/" + c.MANIFEST)}
    ours = {Path(d).name: _md5(Path(d) / c.MANIFEST) for d in drops}
    if any(manifests.get(k) != v for k, v in ours.items()):
        return None, f"{dvc_file} names another set of drops (ingested meanwhile?)"
    return md5, "ok"


def data_record(drops: list[Path], version: str) -> dict:
    """The `data` hop: drops and manifest sha256 -> data version -> DVC md5."""
    md5, why = dvc_md5(drops)
    if md5 is None:
        log.info("lineage: no DVC version recorded (%s)", why)
    return {"version": version, "dvc_md5": md5, "dvc_dataset": str(Path(drops[0]).parent.parent) if md5 else None,
            "drops": [{"id": Path(d).name, "manifest_sha256": hashlib.sha256((Path(d) / c.MANIFEST).read_bytes())
                       .hexdigest(), "rows": c.read_manifest(d).rows} for d in drops]}


def checkout(run: Path, dataset: Path, out: Path) -> dict:
    """Restore the drops `run` was trained on into `out` (atomically) and check the data version."""
    from dvc.repo import Repo
    from dvc_data.hashfile.checkout import checkout as dvc_checkout
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.fs.local import LocalFileSystem

    from tasks import dataset as ds
    from tasks.fsutil import atomic_dir
    data = RunDir(run).lineage().get("data") or {}
    if not data.get("dvc_md5"):
        raise ValueError(f"{Path(run) / LINEAGE}: no DVC version recorded for this model")
    repo = Repo(str(dataset))
    try:
        odb = repo.cache.local
        try:
            tree = Tree.load(odb, HashInfo("md5", data["dvc_md5"]))
        except FileNotFoundError:
            raise ValueError(f"{dataset}: DVC version {data['dvc_md5']} is not in the cache; "
                             "`dvc fetch` it from the remote first") from None
        keep = {d["id"] for d in data["drops"]}  # a window of the latest drops: only those
        subset = Tree()
        for key, meta, oid in tree:
            if key[0] in keep:
                subset.add(key, meta, oid)
        subset.digest()
        with atomic_dir(Path(out)) as tmp:
            dvc_checkout(str(tmp), LocalFileSystem(), subset, odb, relink=False)
    finally:
        repo.close()
    got = ds.version_of([c.read_manifest(d) for d in ds.find_drops([Path(out)])])
    if got != data["version"]:
        raise ValueError(f"{out}: restored data version {got} differs from the recorded {data['version']}")
    log.info("restored data version %s (DVC %s, %d drops) into %s", got, data["dvc_md5"], len(data["drops"]), out)
    return {"out": str(out), "data_version": got, "dvc_md5": data["dvc_md5"], "drops": [d["id"] for d in data["drops"]]}
