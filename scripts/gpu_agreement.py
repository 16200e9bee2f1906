"""gpu-smoke's last step: each GPU backend's scored day against in-process ONNX Runtime on the
CPU (pred-cpu.parquet), run inside the task image (`python3 - WORK SECONDS MODEL... < this`).

Writes WORK/gpu-smoke.json (every backend's max probability difference, the share of posts with
the same topics, and its serving record) and exits 1 when a backend is missing or agrees on the
topics of fewer than MIN_SAME of the posts. Tested on CPU predictions (tests/test_tensorrt_path.py).
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

MIN_SAME = 0.99  # posts whose topics are the same as on the CPU


def main(work: Path, seconds: int, models: list[str]) -> int:
    cpu = pd.read_parquet(work / "pred-cpu.parquet")
    cols = [c for c in cpu if c.startswith("p_")]
    result, failed = {"seconds": seconds, "min_same_topics": MIN_SAME, "backends": {}}, []
    for model in models:
        path = work / f"pred-{model}.parquet"
        if not path.is_file():
            failed.append(f"{model}: no predictions ({path.name} missing)")
            continue
        got = pd.read_parquet(path)
        if list(got["post_id"]) != list(cpu["post_id"]):
            failed.append(f"{model}: scored other posts than the CPU run")
            continue
        diff = np.abs(got[cols].to_numpy() - cpu[cols].to_numpy())
        same = float(np.mean([set(a) == set(b) for a, b in zip(got["topics"], cpu["topics"])]))
        serving = json.loads((work / "repo" / model / "1" / "serving.json").read_text())
        result["backends"][model] = {"backend": serving["backend"], "precision": serving["precision"],
                                     "canary_atol": serving["canary_atol"], "max_prob_diff": float(diff.max()),
                                     "rows_with_same_topics": round(same, 4)}
        if same < MIN_SAME:
            failed.append(f"{model}: same topics on {same:.2%} of posts (< {MIN_SAME:.0%})")
    result["ok"], result["failed"] = not failed, failed
    tmp = work / ".gpu-smoke.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, work / "gpu-smoke.json")
    print(json.dumps(result, indent=2))
    for f in failed:
        print(f"MISMATCH {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
