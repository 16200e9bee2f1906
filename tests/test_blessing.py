"""The blessing is read: publish and promote refuse a run's model its gate did not bless."""
import json
import subprocess
import sys

import pytest

from tasks import gate, rundir
from tasks.promote import promote
from tests.test_tensorrt_path import fake_run


def a_run(tmp_path, cand=0.5, baseline=0.4, force=False):
    """runs/<key>/ as the DAG lays it out: model/, eval/metrics.json, then the gate's blessing."""
    paths = rundir.RunPaths(tmp_path / "runs" / "k")
    rundir.RunDir(fake_run(paths.root / rundir.MODEL_DIR)).write_summary({"mlflow_run_id": None})
    ev = rundir.Evaluation(paths.root / rundir.EVAL_DIR)
    ev.path.mkdir()
    (ev.path / rundir.METRICS).write_text(json.dumps(
        {"models": {"candidate": {"macro_f1": cand}, "baseline": {"macro_f1": baseline}}}))
    return paths.root / rundir.MODEL_DIR, ev


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tasks", *map(str, args)], capture_output=True, text=True)


def test_the_evaluation_readers(tmp_path):
    model, ev = a_run(tmp_path)
    assert rundir.evaluation_of(model) == ev and rundir.evaluation_of(tmp_path / "elsewhere") is None
    assert ev.macro_f1() == 0.5 and ev.macro_f1("baseline") == 0.4 and ev.macro_f1("champion") is None
    assert ev.blessing() is None
    gate.gate(ev.path / rundir.METRICS)
    assert ev.blessing()["blessed"] and ev.blessing()["passed"]


@pytest.mark.parametrize("gated", ["never", "refused"])
def test_publish_and_promote_refuse_an_unblessed_run(tmp_path, gated):
    model, ev = a_run(tmp_path, cand=0.3, baseline=0.4)
    if gated == "refused":
        assert cli("gate", "--metrics", ev.path / rundir.METRICS).returncode == 5
    want = "its gate has not run" if gated == "never" else r"not blessed \(.*< LogReg baseline"
    with pytest.raises(rundir.NotBlessed, match=want):
        promote(model, tmp_path / "champion.json", version=1)
    assert not (tmp_path / "champion.json").exists()
    p = cli("publish", "--model-dir", model, "--repo", tmp_path / "repo")
    assert p.returncode == 4 and ("not blessed" in p.stderr or "gate has not run" in p.stderr), p.stderr
    assert not (tmp_path / "repo").exists(), "nothing written for an unblessed run"
    p = cli("promote", "--model-dir", model, "--pointer", tmp_path / "champion.json", "--tracking-uri", "none")
    assert p.returncode == 4 and not (tmp_path / "champion.json").exists()


def test_a_blessed_or_forced_run_is_published_and_promoted_and_says_which(tmp_path):
    model, ev = a_run(tmp_path, cand=0.3, baseline=0.4)
    assert cli("gate", "--metrics", ev.path / rundir.METRICS, "--force", "true").returncode == 0
    p = cli("publish", "--model-dir", model, "--repo", tmp_path / "repo")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["forced"] is True
    record = promote(model, tmp_path / "champion.json", version=1, metrics_json=ev.path / rundir.METRICS)
    assert record["blessing"] == {"passed": False, "forced": True} and record["test_macro_f1"] == 0.3
    # a model dir outside a run (trained by hand) has nothing to read: published as before
    loose = fake_run(tmp_path / "loose")
    assert cli("publish", "--model-dir", loose, "--repo", tmp_path / "repo2").returncode == 0
