"""Drop lifecycle on the data root: claim (inbox -> processing), quarantine, archive, duplicates.

Every move is one rename on the same filesystem, so a drop is in exactly one place at any
time and each drop is processed once. Nothing here reads arrays or opens anything but the
manifest (no-follow, non-blocking): claim costs the same for any drop, hostile or not. Light
imports only (DAG side).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import stat
from pathlib import Path

from include.settings import Settings, hand_over
from tasks.layout import DROP_ID_RE, MANIFEST, MARKER  # noqa: F401  (stdlib only)
from tasks.rundir import SCHEMA, RunPaths

QUARANTINE_REPORT = "report.json"  # quarantine/<drop_id>/report.json: why the drop was refused

log = logging.getLogger(__name__)
SEEN = "seen-drops.json"


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _free(path: Path) -> Path:
    """`path`, or `path` with a timestamp suffix when taken (never overwrite a kept drop)."""
    return path if not path.exists() else path.with_name(f"{path.name}.{_stamp()}")


def valid_id(name: str) -> bool:
    return DROP_ID_RE.fullmatch(name) is not None  # not .match: `$` lets a trailing newline through


def complete_drops(inbox: Path) -> list[Path]:
    """Drops whose marker exists, oldest marker first. A drop still being written has no marker.

    "Oldest" is the marker's ctime, which the kernel sets: a producer can set an mtime of 0,
    not a ctime in the past, so nobody jumps the queue."""
    found = []
    for marker in Path(inbox).glob(f"*/{MARKER}"):
        d = marker.parent
        if d.name.startswith("."):  # a producer's temp dir (glob skips these anyway)
            continue
        try:
            found.append((os.lstat(marker).st_ctime_ns, d.name, d))
        except FileNotFoundError:  # claimed by someone else meanwhile
            continue
    return [d for _, _, d in sorted(found)]


def _marker_problem(d: Path) -> str | None:
    """The marker must be an empty regular file: not a directory, link, FIFO or device."""
    st = os.lstat(d / MARKER)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a symlink" if stat.S_ISLNK(st.st_mode)
                else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file")
        return f"{d / MARKER}: the marker is {kind}; it must be an empty regular file"
    if st.st_size:
        return f"{d / MARKER}: the marker must be empty, it has {st.st_size} bytes"
    return None


def content_digest(drop: Path) -> str:
    """What makes two drops "the same": the manifest's data checksums, dims, label names and
    kind (validation later proves the files match those checksums). Reads only the manifest,
    at most 1 MiB of it, through a non-blocking, no-follow fd: constant time for a drop of
    any size. An unreadable manifest is digested as raw bytes (validation will refuse it)."""
    h = hashlib.sha256()
    raw = b""
    try:
        fd = os.open(Path(drop) / MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raw = f.read(1 << 20)
    except OSError:
        pass
    try:
        m = json.loads(raw)
        key = {k: m.get(k) for k in ("kind", "dims", "label_names", "files")}
        h.update(json.dumps(key, sort_keys=True).encode())
    except Exception:  # noqa: BLE001 - bad JSON, too deep, not a dict: validation names the problem
        h.update(b"raw\0" + raw)
    return h.hexdigest()


def seen(s: Settings) -> dict:
    p = s.state / SEEN
    return json.loads(p.read_text()) if p.exists() else {}


def new_run(s: Settings, name: str) -> dict:
    """A new run directory runs/<UTC stamp>-<name>/ and the paths the training steps use in it."""
    work = s.runs / f"{_stamp()}-{name}"
    work.mkdir(parents=True, exist_ok=True)
    hand_over(s, work)  # the task containers write their outputs here
    return RunPaths(work).as_dict()


def claim(s: Settings) -> dict | None:
    """Move the oldest complete drop to processing/. Returns the paths a DAG run works with.

    Oddly named entries are quarantined on sight; a duplicate (same content as a drop
    already processed) is archived under archive/duplicates/ and reported as such.
    """
    for d in complete_drops(s.inbox):
        # refused on sight (no container needed); the link itself is moved, never its target
        if d.is_symlink():
            quarantine_path(s, d, d.name, {"ok": False, "problems": [
                {"code": "symlink", "file": d.name, "message": f"{d}: the drop directory is a symlink"}]})
            continue
        if not valid_id(d.name):
            quarantine_path(s, d, d.name, {"ok": False, "problems": [
                {"code": "bad_drop_id", "file": d.name, "message": f"{d.name!r}: not a valid drop id"}]})
            continue
        try:
            bad_marker = _marker_problem(d)
        except FileNotFoundError:
            continue
        if bad_marker:
            quarantine_path(s, d, d.name, {"ok": False, "problems": [
                {"code": "bad_marker", "file": MARKER, "message": bad_marker}]})
            continue
        if (stale := s.processing / d.name).exists() or stale.is_symlink():
            # Only the continuous DAG claims, one run at a time: what processing/ still holds is
            # from a run that ended without moving it (a failure). A re-sent drop of that id
            # (the usual answer to a failed run) takes its place under its own name (under another
            # its manifest id would not match); the stale copy is kept in quarantine, with why.
            quarantine_path(s, stale, d.name, {"ok": False, "problems": [
                {"code": "stale_processing", "file": d.name, "message": f"{stale}: left by a run that ended without "
                 "finishing, superseded by a re-sent drop of the same id"}]})
        dest = _free(s.processing / d.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(d, dest)  # atomic: whoever renames first owns the drop
        except FileNotFoundError:
            continue
        digest = content_digest(dest)
        claimed = {"drop_id": d.name, "drop": str(dest), "digest": digest, **new_run(s, d.name)}
        if (schema := s.dataset / SCHEMA).is_file():  # validate's only view of the dataset
            shutil.copyfile(schema, claimed["schema"])
        if (first := seen(s).get(digest)) is not None:
            where = _free(s.archive / "duplicates" / d.name)
            where.parent.mkdir(parents=True, exist_ok=True)
            os.rename(dest, where)
            log.warning("drop %s is a duplicate of %s (same content, sha256 %s): skipped, kept at %s",
                        d.name, first, digest[:12], where)
            return {**claimed, "duplicate_of": first, "drop": str(where)}
        log.info("claimed drop %s -> %s (sha256 %s)", d.name, dest, digest[:12])
        return claimed
    return None


def quarantine_path(s: Settings, drop: Path, drop_id: str, report: dict) -> Path:
    """quarantine/<drop_id>/drop/ (the bytes as they came) + quarantine/<drop_id>/report.json."""
    target = _free(s.quarantine / (drop_id if valid_id(drop_id) else f"bad-id-{_stamp()}"))
    target.mkdir(parents=True)
    os.rename(drop, target / "drop")
    _write_json(target / QUARANTINE_REPORT, {"original_name": drop_id, **report})
    reasons = "; ".join(f"{p['code']}: {p['message']}" for p in report.get("problems", []))
    log.error("drop %s quarantined at %s: %s", drop_id, target, reasons or "see report")
    return target


def quarantine(s: Settings, claimed: dict) -> str:
    report = json.loads(Path(claimed["report"]).read_text())
    return str(quarantine_path(s, Path(claimed["drop"]), claimed["drop_id"], report))


def archive(s: Settings, claimed: dict) -> str:
    """processing/<id> -> archive/<id>; the content digest is remembered to catch re-sends."""
    target = _free(s.archive / claimed["drop_id"])
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(claimed["drop"], target)
    registry = seen(s)
    registry[claimed["digest"]] = claimed["drop_id"]
    _write_json(s.state / SEEN, registry)
    log.info("drop %s archived at %s", claimed["drop_id"], target)
    return str(target)


def validation_ok(claimed: dict) -> bool:
    return bool(json.loads(Path(claimed["report"]).read_text()).get("ok"))
