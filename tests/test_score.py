"""`tasks score`: a drop through Triton or in-process ONNX Runtime into Parquet, CSV or JSON lines."""
import datetime as dt
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tasks import synth
from tasks.contract import open_drop
from tasks.export_onnx import export_onnx
from tasks.score import OnnxScorer, TritonScorer, score
from tasks.train import TrainConfig, train
from tasks.triton import repo as trepo
from tasks.triton.reload import reload
from tasks.triton.server import TritonServer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    synth.write_labeled(root / "d", "d", rows=5000, seed=5)
    train([root / "d"], root / "run", TrainConfig(max_epochs=1), tracking_uri="none")
    export_onnx(root / "run", tracking_uri="none")
    synth.write_scoring_day(root / "day", dt.date(2026, 3, 1), rows=2500, seed=9)
    return root


def expected(root):
    drop = open_drop(root / "day")
    s = OnnxScorer(root / "run")
    probs, labels, _ = s(np.asarray(drop.img), np.asarray(drop.txt))
    return drop, s.names, probs, labels


def test_onnx_scoring_in_every_format(setup, tmp_path):
    root = setup
    drop, names, probs, labels = expected(root)
    for suffix in (".parquet", ".csv", ".jsonl"):
        out = tmp_path / f"pred{suffix}"
        r = score(root / "day", out, OnnxScorer(root / "run"), names, batch=700, inflight=3)
        assert r["rows"] == 2500 and r["model_versions"] == ["run"]
        df = {".parquet": pd.read_parquet, ".csv": pd.read_csv,
              ".jsonl": lambda p: pd.read_json(p, lines=True, dtype={"post_id": str})}[suffix](out)
        assert list(df.columns[:3]) == ["post_id", "timestamp", "model_version"] and len(df) == 2500
        assert df["post_id"].astype(str).tolist() == [str(i) for i in drop.ids], "row order kept across chunks"
        got = df[[f"p_{n}" for n in names]].to_numpy()
        assert np.abs(got - probs).max() <= (1e-5 if suffix == ".parquet" else 1e-5 + 5e-6)
        topics = df["topics"].map(lambda t, csv=suffix == ".csv": t.split(";") if isinstance(t, str) else [] if csv
                                  else list(t))
        assert topics.tolist() == [[n for n, on in zip(names, row) if on] for row in labels]
        assert sum(map(len, topics)) > 0
        first_ts = pd.Timestamp(df["timestamp"].iloc[0])
        assert first_ts.date() == dt.date(2026, 3, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv", "pred.jsonl", "pred.parquet"], "no temp files"


def test_scoring_through_triton_matches_onnx_runtime(setup, tmp_path):
    """Triton answers logits only (as every backend's config does); score applies the thresholds
    of the version that answered, read from the model repository."""
    root = setup
    drop, names, probs, labels = expected(root)
    repo = tmp_path / "repo"
    trepo.publish(root / "run", repo, execution_env=sys.prefix)
    config = (repo / "social_tone" / "config.pbtxt").read_text()
    assert config.count("name: \"logits\"") == 1 and "probs" not in config and "TYPE_BOOL" not in config

    def run_score(out):
        p = subprocess.run([sys.executable, "-m", "tasks", "score", str(root / "day"), "--out", str(out),
                            "--url", server.grpc_url, "--repo", str(repo), "--batch", "1000"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.splitlines()[-1])

    with TritonServer(repo, tmp_path / "triton") as server:
        reload(repo, "social_tone", url=server.grpc_url, run_dir=root / "run")
        r = run_score(tmp_path / "pred.parquet")
        assert r["rows"] == 2500 and r["model_versions"] == ["1"]
        assert TritonScorer(server.grpc_url, "social_tone", repo, 50, 512, 768).names == names
        df = pd.read_parquet(tmp_path / "pred.parquet")
        assert np.abs(df[[f"p_{n}" for n in names]].to_numpy() - probs).max() <= 1e-5
        assert (df["model_version"] == "1").all()
        assert [list(t) for t in df["topics"]] == [[n for n, on in zip(names, row) if on] for row in labels]

        # version 2: the same graph with stricter thresholds -> fewer topics, by v2's own thresholds
        run2 = tmp_path / "run2"
        shutil.copytree(root / "run", run2)
        t = json.loads((run2 / "thresholds.json").read_text())
        t["thresholds"] = [0.9] * len(t["thresholds"])
        (run2 / "thresholds.json").write_text(json.dumps(t))
        trepo.publish(run2, repo, execution_env=sys.prefix)
        reload(repo, "social_tone", url=server.grpc_url, run_dir=run2)
        r = run_score(tmp_path / "pred2.parquet")
        assert r["model_versions"] == ["2"]
        df2 = pd.read_parquet(tmp_path / "pred2.parquet")
        served = df2[[f"p_{n}" for n in names]].to_numpy()
        assert [list(x) for x in df2["topics"]] == [[n for n, p in zip(names, row) if p >= np.float32(0.9)]
                                                    for row in served]
        assert sum(map(len, df2["topics"])) < sum(map(len, df["topics"]))


def test_triton_scoring_needs_the_repository(setup, tmp_path):
    p = subprocess.run([sys.executable, "-m", "tasks", "score", str(setup / "day"), "--out", str(tmp_path / "x.parquet"),
                        "--url", "127.0.0.1:1"], capture_output=True, text=True)
    assert p.returncode == 3 and "needs --repo" in p.stdout


def test_a_failing_scorer_leaves_no_output(setup, tmp_path):
    root = setup
    calls = []

    def flaky(img, txt):
        calls.append(len(img))
        if len(calls) == 3:
            raise ConnectionError("Triton went away")
        return np.zeros((len(img), 50), np.float32), np.zeros((len(img), 50), bool), "1"

    out = tmp_path / "pred.parquet"
    out.write_bytes(b"yesterday's good output")
    with pytest.raises(ConnectionError):
        score(root / "day", out, flaky, [f"topic_{i:02d}" for i in range(50)], batch=500, inflight=1)
    assert out.read_bytes() == b"yesterday's good output" and sorted(tmp_path.iterdir()) == [out]


def test_bad_output_format_is_a_clear_error(setup, tmp_path):
    p = subprocess.run([sys.executable, "-m", "tasks", "score", str(setup / "day"), "--out", str(tmp_path / "x.xlsx"),
                        "--onnx-dir", str(setup / "run")], capture_output=True, text=True)
    assert p.returncode == 3 and "x.xlsx: unknown output format" in p.stdout
