"""Daily scoring: rows/s through Triton vs in-process ONNX Runtime, and peak RSS of
`tasks score` and `tasks monitor` for days of 100k and 1M posts. One run, same model.

Each command runs as its own process; its peak RSS is the high-water mark of its address
space (VmHWM), so the figure covers everything the command touched, memory maps included.

    python bench/scoring_memory.py [--sizes 100000 1000000] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks import synth
from tasks.export_onnx import export_onnx
from tasks.train import TrainConfig, train
from tasks.triton import repo as trepo
from tasks.triton.reload import reload
from tasks.triton.server import TritonServer

REPO = Path(__file__).resolve().parents[1]


def run_measured(cmd: list[str]) -> dict:
    """Run a command; its peak RSS is the kernel's high-water mark of its own address space
    (VmHWM in /proc/<pid>/status), sampled until it exits. (ru_maxrss would also count the
    pages of this big parent that the forked child shared before exec.)"""
    import threading
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": "none"})
    hwm = [0]

    def sample():
        while p.poll() is None:
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(0.02)

    watcher = threading.Thread(target=sample)
    watcher.start()
    out = p.stdout.read()
    p.wait()
    watcher.join()
    secs = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed")
    return {"seconds": round(secs, 1), "peak_rss_mb": round(hwm[0] / 1024),
            "result": json.loads(out.strip().splitlines()[-1])}


def main() -> int:
    os.environ.setdefault("SOCIAL_TONE_TRITON_ADMIN_SECRET", secrets.token_urlsafe(32))  # server + reload share it
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    py = [sys.executable, "-m", "tasks"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        root = Path(tmp)
        synth.write_labeled(root / "d", "d", rows=20000, seed=3)
        train([root / "d"], root / "run", TrainConfig(max_epochs=3), tracking_uri="none")
        export_onnx(root / "run", tracking_uri="none")
        trepo.publish(root / "run", root / "repo", execution_env=sys.prefix)
        with TritonServer(root / "repo", root / "triton") as server:
            reload(root / "repo", "social_tone", url=server.grpc_url, run_dir=root / "run")
            for i, n in enumerate(args.sizes):
                day = dt.date(2026, 1, 1) + dt.timedelta(days=i)
                drop = root / "in" / day.isoformat()
                synth.write_scoring_day(drop, day, n, seed=5)
                for mode, extra in (("onnxruntime in-process", ["--onnx-dir", str(root / "run")]),
                                    ("triton grpc", ["--url", server.grpc_url, "--repo", str(root / "repo")])):
                    out = root / "pred" / f"{day}-{mode.split()[0]}.parquet"
                    m = run_measured(py + ["score", str(drop), "--out", str(out), "--batch", "1024", *extra])
                    rows.append({"rows": n, "step": f"score ({mode})", "seconds": m["seconds"],
                                 "rows_per_s": round(n / m["seconds"]), "peak_rss_mb": m["peak_rss_mb"]})
                    print(rows[-1], flush=True)
                m = run_measured(py + ["monitor", "--predictions", str(out), "--day", day.isoformat(), "--root",
                                       str(root / "mon"), "--drop", str(drop)])
                rows.append({"rows": n, "step": "monitor", "seconds": m["seconds"],
                             "rows_per_s": round(n / m["seconds"]), "peak_rss_mb": m["peak_rss_mb"]})
                print(rows[-1], flush=True)
                import shutil
                shutil.rmtree(drop)
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}", "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
