"""The long fuzz run of validation (tests/fuzz_drops.py strategies, random seed), in process.

    PYTHONPATH=. python bench/fuzz_validate.py --examples 5000 [--json bench/results/fuzz-validate.json]

Counts cases, crashes (an exception out of validate_drop, a non-JSON report, a modified drop,
an `internal_error` problem), the worst time of one validation and the process's peak RSS.
The figure lands in docs/reliability.md (docs/make_reliability.py reads the JSON).
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tasks.validate import validate_drop  # noqa: E402
from tests.fuzz_drops import cases, run_case, template  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    stats = {"cases": 0, "crashes": 0, "worst_seconds": 0.0, "valid": 0, "codes": {}, "examples": []}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-validate-") as tmp:
        base = template(Path(tmp) / "template")

        @settings(max_examples=args.examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def one(case):
            stats["cases"] += 1
            try:
                report, secs = run_case(validate_drop, base, Path(tmp) / "w", *case)
                body = json.loads(json.dumps(report.to_json()))
                codes = [p["code"] for p in body["problems"]]
                if "internal_error" in codes:
                    raise AssertionError(body["problems"])
                stats["worst_seconds"] = max(stats["worst_seconds"], secs)
                stats["valid"] += body["ok"]
                for code in set(codes):
                    stats["codes"][code] = stats["codes"].get(code, 0) + 1
            except Exception:  # noqa: BLE001 - counting is the point
                stats["crashes"] += 1
                if len(stats["examples"]) < 5:
                    stats["examples"].append({"case": repr(case)[:500], "error": traceback.format_exc()[-800:]})

        one()
    result = {"command": f"python bench/fuzz_validate.py --examples {args.examples}",
              "machine": f"{platform.machine()}, {platform.python_version()}, {platform.node()}",
              "date": time.strftime("%Y-%m-%d"), "cases": stats["cases"], "crashes": stats["crashes"],
              "worst_seconds": round(stats["worst_seconds"], 3), "valid_cases": stats["valid"],
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "wall_seconds": round(time.monotonic() - t0, 1), "codes": dict(sorted(stats["codes"].items())),
              "crash_examples": stats["examples"]}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if stats["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
