import numpy as np

from tasks import dataset as ds
from tasks import split as sp
from tests.conftest import make_drop


def test_split_is_70_15_15_and_seeded():
    ids = np.array([f"p{i}" for i in range(20_000)])
    a = sp.assign(ids, seed=42)
    frac = np.bincount(a, minlength=3) / len(ids)
    np.testing.assert_allclose(frac, [0.70, 0.15, 0.15], atol=0.01)
    np.testing.assert_array_equal(a, sp.assign(ids, seed=42))
    assert (a != sp.assign(ids, seed=7)).mean() > 0.3


def test_adding_a_drop_never_moves_an_old_post(tmp_path):
    first = make_drop(tmp_path / "drops" / "a-001", rows=500, seed=1)
    before = ds.load([first])
    make_drop(tmp_path / "drops" / "a-002", rows=800, seed=2)
    after = ds.load([tmp_path / "drops"])
    assert len(after.ids) == 1300 and after.drops[0].endswith("a-001")
    old = dict(zip(before.ids, before.split))
    moved = [i for i, s in zip(after.ids, after.split) if i in old and old[i] != s]
    assert moved == [] and sum(i in old for i in after.ids) == 500


def test_a_repeated_post_keeps_the_latest_labels(tmp_path):
    a = make_drop(tmp_path / "a", rows=10, seed=1)
    b = make_drop(tmp_path / "b", rows=10, seed=1)  # same ids, regenerated labels
    ids_b = np.load(b / "ids.npy")
    np.save(b / "labels.npy", np.ones((10, 4), np.uint8))
    from tests.conftest import resign
    resign(b)
    d = ds.load([a, b])
    assert len(d.ids) == 10 and set(d.ids) == set(ids_b)
    assert (d.labels == 1).all()
