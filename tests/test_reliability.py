"""Bad input and faults: every kind of bad drop is quarantined with its reason and its bytes,
the loop never stops, the next good drop still goes through; killed and interrupted steps
leave nothing half-written behind."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include import drops, settings
from tasks import contract as c
from tests.bad_drops import CORPUS, build, drain, good
from tests.conftest import tree_digest


@pytest.fixture
def s(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIAL_TONE_DATA_ROOT", str(tmp_path / "data"))
    (tmp_path / "data" / "inbox").mkdir(parents=True)
    return settings.load()


def test_corpus_has_at_least_45_kinds():
    assert len(CORPUS) >= 45


def test_every_bad_drop_is_quarantined_and_the_good_one_behind_them_goes_through(s):
    digests, t = {}, time.time() - 1000
    for i, kind in enumerate(CORPUS):
        d = build(s.inbox, kind)
        digests[kind] = tree_digest(d.resolve() if d.is_symlink() else d)
        marker = d / c.MARKER
        os.utime(marker, (t + i, t + i), follow_symlinks=False)  # the order producers finished in
    good(s.inbox, "good-after-all", seed=9)  # newest marker: taken last
    records = drain(s)

    assert [r["drop"] for r in records if r["outcome"] == "accepted"] == ["good-after-all"]
    assert records[-1]["drop"] == "good-after-all", "the good drop comes after every bad one"
    assert list(s.inbox.iterdir()) == [] and list(s.processing.iterdir()) == []
    by_name = {json.loads((q / "report.json").read_text())["original_name"]: q for q in s.quarantine.iterdir()}
    assert len(by_name) == len(CORPUS)
    for kind, (_, name, code) in CORPUS.items():
        q = by_name[name]
        report = json.loads((q / "report.json").read_text())
        assert report["ok"] is False and code in [p["code"] for p in report["problems"]], (kind, report)
        kept = q / "drop"
        if kind == "drop directory is a symlink":
            assert kept.is_symlink() and tree_digest(kept.resolve()) == digests[kind], "target untouched"
        else:
            assert tree_digest(kept) == digests[kind], f"{kind}: the bytes must be kept as they came"
        assert all(p["message"] for p in report["problems"])
    slow = {r["drop"]: round(r["seconds"], 2) for r in records if r["seconds"] >= 1.0}
    assert slow == {}, f"every drop is refused (or accepted) in under 1 s: {slow}"


def test_a_drop_without_its_marker_is_not_picked_up(s):
    d = good(s.inbox, "slow", seed=1)
    (d / c.MARKER).unlink()  # still being written
    assert drops.claim(s) is None and d.exists()
    (d / c.MARKER).touch()
    assert drops.claim(s)["drop_id"] == "slow"


def test_a_drop_re_sent_after_a_failed_run_is_claimed_as_itself_and_the_stale_copy_kept(s):
    """The earlier copy is still in processing/ (its run failed): the re-sent drop is claimed
    under its own id, not as <id>-2 (whose manifest id would not match: quarantined), and the
    stale copy goes to quarantine with the reason, bytes intact (issue 26)."""
    good(s.inbox, "resent", seed=1)
    first = drops.claim(s)
    assert first["drop"] == str(s.processing / "resent")
    stale = tree_digest(s.processing / "resent")
    good(s.inbox, "resent", seed=2)
    again = drops.claim(s)
    assert again["drop_id"] == "resent" and again["drop"] == str(s.processing / "resent")
    assert tree_digest(s.processing / "resent") != stale and not (s.inbox / "resent").exists()
    [q] = list(s.quarantine.iterdir())
    report = json.loads((q / "report.json").read_text())
    assert report["problems"][0]["code"] == "stale_processing" and tree_digest(q / "drop") == stale


def test_two_drops_together_are_taken_oldest_first(s):
    """Order = when each marker was written (its ctime, set by the kernel). A producer that sets
    its marker's mtime to 0 does not jump the queue."""
    for i, name in enumerate(["b-second", "a-third", "c-first"]):
        good(s.inbox, name, seed=i)
    for name in ("c-first", "b-second", "a-third"):  # the order the producers finished in
        (s.inbox / name / c.MARKER).unlink()
        (s.inbox / name / c.MARKER).touch()
        time.sleep(0.01)
    os.utime(s.inbox / "a-third" / c.MARKER, (0, 0))
    assert [r["drop"] for r in drain(s)] == ["c-first", "b-second", "a-third"]


def test_a_duplicate_drop_is_skipped(s):
    good(s.inbox, "first", seed=5)
    assert drain(s)[0]["outcome"] == "accepted"
    shutil.copytree(s.archive / "first", s.inbox / "first-again")  # same bytes, another name
    r = drain(s)
    assert [{k: v for k, v in x.items() if k != "seconds"} for x in r] == [
        {"drop": "first-again", "outcome": "duplicate", "where": str(s.archive / "duplicates" / "first-again")}]


def test_training_killed_midway_leaves_no_run_and_the_retry_succeeds(tmp_path):
    from tasks import synth
    synth.write_labeled(tmp_path / "d", "d", rows=20000, seed=2)
    cmd = [sys.executable, "-m", "tasks", "train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "run"),
           "--epochs", "30", "--patience", "30", "--tracking-uri", "none"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:  # kill it once it is inside the epochs
        if "epoch 2" in line:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "run").exists(), "a killed task must not leave a run dir that looks complete"
    retry = subprocess.run(cmd[:-6] + ["--epochs", "2", "--tracking-uri", "none"], capture_output=True, text=True)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert (tmp_path / "run" / "model.pt").exists() and (tmp_path / "run" / "train_summary.json").exists()


def test_docs_reliability_md_is_generated_and_current():
    repo = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, str(repo / "docs" / "make_reliability.py"), "--check"],
                       env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True)
    assert p.returncode == 0, "docs/reliability.md is stale: run `python docs/make_reliability.py`"
    text = (repo / "docs" / "reliability.md").read_text()
    assert text.count("| yes |") == len(CORPUS) and "NOT" not in text


def test_claim_hands_validate_the_datasets_schema_in_the_run_dir(s):
    """validate mounts processing/ and the runs only (not the dataset): claim copies the
    dataset's schema into the run; before the first ingest there is none, and validate says so."""
    good(s.inbox, "first", seed=1)
    claimed = drops.claim(s)
    assert not Path(claimed["schema"]).exists()
    (s.dataset).mkdir(parents=True, exist_ok=True)
    (s.dataset / "schema.json").write_text('{"img_dim": 8, "txt_dim": 6, "label_names": ["a"]}')
    good(s.inbox, "second", seed=2)
    claimed = drops.claim(s)
    assert Path(claimed["schema"]).parent == Path(claimed["run_dir"])
    assert Path(claimed["schema"]).read_text() == (s.dataset / "schema.json").read_text()
