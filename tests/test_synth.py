import datetime as dt

import numpy as np

from tasks import contract as c
from tasks import synth
from tasks.validate import validate_drop


def test_deterministic_by_seed_and_independent_of_chunking(tmp_path, monkeypatch):
    a = synth.write_labeled(tmp_path / "a", "a", rows=3000, seed=5)
    monkeypatch.setattr(synth, "CHUNK", 8192)
    b = synth.write_labeled(tmp_path / "b", "b", rows=3000, seed=5)
    other = synth.write_labeled(tmp_path / "o", "o", rows=3000, seed=6)
    assert a.files == b.files
    assert a.files[c.IMG] != other.files[c.IMG]


def test_warcov_like_shapes_and_imbalance(tmp_path):
    synth.write_labeled(tmp_path / "d", "d", rows=30_000, seed=42)
    assert validate_drop(tmp_path / "d").ok
    d = c.open_drop(tmp_path / "d")
    assert d.img.shape == (30_000, 512) and d.txt.shape == (30_000, 768) and d.labels.shape == (30_000, 50)
    prev = np.asarray(d.labels).mean(axis=0)
    assert 0.005 < prev.min() < 0.02 and 0.15 < prev.max() < 0.21
    y = np.asarray(d.labels, dtype=np.float32)
    co = np.corrcoef(y.T)[np.triu_indices(50, 1)]
    assert co.max() > 0.1, "labels should co-occur through shared themes"


def test_image_view_is_weaker_than_text(tmp_path):
    """Both views carry topic signal (above chance), text more than image, as in WarCov."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import average_precision_score
    synth.write_labeled(tmp_path / "d", "d", rows=12_000, seed=1)
    d = c.open_drop(tmp_path / "d")
    y = np.asarray(d.labels)
    ap = {}
    for view, x in (("img", np.asarray(d.img)), ("txt", np.asarray(d.txt))):
        score = Ridge(alpha=1000).fit(x[:10_000], y[:10_000]).predict(x[10_000:])
        ap[view] = average_precision_score(y[10_000:], score, average="macro")
    chance = y[10_000:].mean()
    assert ap["txt"] > ap["img"] * 1.2 and ap["img"] > chance * 1.5, (ap, chance)


def test_scoring_days_are_unlabeled_with_timestamps_in_the_day(tmp_path):
    day = dt.date(2026, 3, 1)
    synth.write_scoring_day(tmp_path / day.isoformat(), day, rows=500)
    r = validate_drop(tmp_path / day.isoformat(), require_kind="unlabeled")
    assert r.ok, r.summary()
    d = c.open_drop(tmp_path / day.isoformat())
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
    assert d.labels is None and (d.timestamps >= t0).all() and (d.timestamps < t0 + 86400).all()
