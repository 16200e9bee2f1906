"""Property-based: validation of a mutated drop (bytes, headers, manifest fields, file types)
never crashes, never hangs, never modifies the drop, and always gives a JSON report. A bounded,
deterministic run here; the long one is `make fuzz` (bench/fuzz_validate.py)."""
import json
import resource
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings

from tasks.validate import validate_drop
from tests.fuzz_drops import cases, run_case, template

CODES = {"empty_drop", "missing_manifest", "bad_manifest", "bad_drop_id", "zero_rows", "symlink", "missing_file",
         "checksum_mismatch", "pickled_payload", "unreadable_npy", "not_npy", "wrong_shape", "wrong_dim",
         "count_mismatch", "wrong_dtype", "non_finite", "non_binary_labels", "duplicate_ids", "missing_ids",
         "wrong_kind", "not_regular_file", "unexpected_file", "bad_marker", "hard_linked", "too_large",
         "no_positive_labels", "schema_mismatch", "changed_during_validation"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return template(tmp_path_factory.mktemp("fuzz-template"))


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases)
# found by the long run: numpy's header parser raised tokenize.TokenError out of validation
@example(case=([("header", "img_emb.npy", "<c8", (3,), False), ("flip", "img_emb.npy", 60, 1)], False))
def test_validation_survives_any_mutation(base, tmp_path, case):
    muts, resign = case
    report, secs = run_case(validate_drop, base, tmp_path / "w", muts, resign)
    body = json.loads(json.dumps(report.to_json()))  # always a JSON report
    assert isinstance(body["ok"], bool) and secs < 2.0
    assert {p["code"] for p in body["problems"]} <= CODES, body["problems"]  # no internal_error: every case is named
    assert body["ok"] or body["problems"]
    if not muts:
        assert body["ok"], body
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2_000_000  # KiB: bounded memory


@pytest.mark.parametrize("breaker", ["deeply_nested_manifest", "huge_integer", "negative_dimension", "data_fifo",
                                     "manifest_fifo"])
def test_the_cli_reports_what_used_to_crash_or_hang(tmp_path, breaker):
    """These made `tasks validate` exit 1 with a traceback and no report, or hang forever."""
    from tests import bad_drops as b
    d = b.good(tmp_path / "inbox", "drop-x")
    getattr(b, breaker)(d)
    report = tmp_path / "report.json"
    p = subprocess.run([sys.executable, "-m", "tasks", "validate", str(d), "--report", str(report)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 3, p.stderr
    body = json.loads(report.read_text())
    assert body["ok"] is False and body["problems"][0]["code"] in CODES and "Traceback" not in p.stderr
