"""`tasks score`: score a drop through Triton (or in-process ONNX Runtime) in bounded chunks.

Output rows: post_id, timestamp (when the drop has them), model_version, p_<topic> for every
topic, and `topics`: the names above their tuned threshold. Format from the suffix: .parquet,
.csv (topics joined by ';'), .json/.jsonl (one JSON object a line). Memory stays flat in the
drop's size: each chunk is read from a map that is closed again, at most `inflight` chunks are in flight, and each
chunk is appended to the output as soon as it is back. The output appears by rename only
when complete.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from tasks import rundir
from tasks.triton.repo import MAX_BATCH
from tasks.contract import IDS, IMG, TIMESTAMPS, TXT, Drop, open_drop, read_rows
from tasks.fsutil import ordinary_mode
from tasks.topics import decide

log = logging.getLogger(__name__)
BATCH = MAX_BATCH  # rows per request
FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "jsonl", ".jsonl": "jsonl"}

# (img, txt) -> (probs float32 [B,K], labels bool [B,K], model version that answered)
ScoreFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, str]]


class OnnxScorer:
    """In-process ONNX Runtime over a run dir or a published version dir (model.onnx + thresholds.json)."""

    def __init__(self, model_dir: Path, threads: int = 0):
        import onnxruntime as ort
        model_dir = Path(model_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_dir / rundir.ONNX), opts, providers=["CPUExecutionProvider"])
        t = json.loads((model_dir / rundir.THRESHOLDS).read_text())
        self.names, self.thresholds = t["label_names"], np.asarray(t["thresholds"], dtype=np.float32)
        self.version = model_dir.name

    def __call__(self, img, txt):
        logits = self.session.run(["logits"], {"img_emb": img, "txt_emb": txt})[0]
        return (*decide(logits, self.thresholds), self.version)


class TritonScorer:
    """Logits from Triton (any backend), topics by the thresholds of the version that
    answered, read from the model repository it was published to."""

    def __init__(self, url: str, model: str, repo: Path, n_labels: int, img_dim: int, txt_dim: int):
        from tasks.triton.client import TritonClient
        self.client = TritonClient(url, model)
        self.model, self.repo = model, Path(repo)
        self.names = self.client.label_names(n_labels, img_dim, txt_dim)
        self._thresholds: dict[str, np.ndarray] = {}

    def thresholds(self, version: str) -> np.ndarray:
        if version not in self._thresholds:
            from tasks.triton.repo import thresholds
            t = thresholds(self.repo, self.model, version)
            if t["label_names"] != self.names:
                raise ValueError(f"{self.repo / self.model / version}: thresholds.json names other topics "
                                 "than the served model's labels.txt")
            self._thresholds[version] = np.asarray(t["thresholds"], dtype=np.float32)
        return self._thresholds[version]

    def __call__(self, img, txt):
        p = self.client.infer(img, txt)  # a reload may land mid-day: each chunk by its own version
        return (*decide(p.logits, self.thresholds(p.version)), p.version)


def chunks(drop: Drop, rows: int) -> Iterator[tuple[int, int]]:
    n = drop.manifest.rows
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def _table(drop: Drop, start: int, stop: int, names: list[str], probs: np.ndarray, labels: np.ndarray,
           version: str) -> pa.Table:
    cols = {"post_id": pa.array(read_rows(drop.path / IDS, start, stop).astype(str))}
    if drop.timestamps is not None:
        cols["timestamp"] = pa.array(read_rows(drop.path / TIMESTAMPS, start, stop), pa.timestamp("s", tz="UTC"))
    cols["model_version"] = pa.array([version] * (stop - start), pa.string())
    for k, name in enumerate(names):
        cols[f"p_{name}"] = pa.array(probs[:, k])
    name_arr = np.asarray(names, dtype=object)
    cols["topics"] = pa.array([list(name_arr[row]) for row in labels], pa.list_(pa.string()))
    return pa.table(cols)


class _Writer:
    """Appends tables to a temp file; commit() renames it into place."""

    def __init__(self, out: Path, fmt: str):
        self.out, self.fmt = Path(out), fmt
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.out.parent, prefix=f".{self.out.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        ordinary_mode(self.tmp)  # analysts and the dashboard read it as other users
        self._pq = None
        self._buffer: list[pa.Table] = []
        self._fh = None if fmt == "parquet" else open(self.tmp, "w", encoding="utf-8", newline="")
        self._header = True

    ROW_GROUP = 65536  # rows per Parquet row group: chunks are buffered up to this (~15 MB)

    def write(self, t: pa.Table) -> None:
        if self.fmt == "parquet":
            self._buffer.append(t)
            if sum(b.num_rows for b in self._buffer) >= self.ROW_GROUP:
                self._flush()
            return
        df = t.to_pandas()
        if "timestamp" in df:
            df["timestamp"] = df["timestamp"].map(lambda ts: ts.isoformat())
        if self.fmt == "csv":
            df["topics"] = df["topics"].map(";".join)
            df.to_csv(self._fh, index=False, header=self._header, float_format="%.6g")
        else:
            df["topics"] = df["topics"].map(list)
            df.to_json(self._fh, orient="records", lines=True, double_precision=6)
        self._header = False

    def _flush(self) -> None:
        if not self._buffer:
            return
        import pyarrow.parquet as pq
        t = pa.concat_tables(self._buffer)
        self._buffer = []
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.tmp, t.schema, compression="zstd")
        self._pq.write_table(t, row_group_size=max(t.num_rows, 1))

    def commit(self) -> None:
        self._flush()
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)


def score(drop_path: Path, out: Path, scorer: ScoreFn, names: list[str], *, batch: int = BATCH,
          inflight: int = 4) -> dict:
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: unknown output format (use one of {', '.join(FORMATS)})")
    drop = open_drop(drop_path)
    if len(names) != drop.manifest.n_labels:
        raise ValueError(f"{drop_path}: the model has {len(names)} topics; the drop's manifest names "
                         f"{drop.manifest.n_labels}")
    writer = _Writer(out, fmt)
    t0, rows, counts, versions = time.monotonic(), 0, np.zeros(len(names), np.int64), set()
    try:
        with cf.ThreadPoolExecutor(max_workers=inflight) as pool:
            pending: collections.deque = collections.deque()
            spans = chunks(drop, batch)

            def submit() -> bool:
                span = next(spans, None)
                if span is None:
                    return False
                s, e = span
                img = read_rows(drop.path / IMG, s, e)
                txt = read_rows(drop.path / TXT, s, e)
                pending.append((s, e, pool.submit(scorer, img, txt)))
                return True

            while len(pending) < inflight and submit():
                pass
            while pending:
                s, e, fut = pending.popleft()
                probs, labels, version = fut.result()
                versions.add(version)
                writer.write(_table(drop, s, e, names, probs, labels, version))
                rows += e - s
                counts += labels.sum(axis=0)
                submit()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    secs = time.monotonic() - t0
    log.info("scored %d rows of %s in %.1fs (%.0f rows/s) -> %s", rows, drop_path, secs, rows / max(secs, 1e-9), out)
    return {"out": str(out), "rows": rows, "seconds": round(secs, 2), "model_versions": sorted(versions),
            "topic_counts": dict(zip(names, counts.tolist()))}
