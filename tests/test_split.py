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


def test_streamed_batches_cover_the_split_once_per_epoch_in_bounded_groups(tmp_path, monkeypatch):
    """With the split not cached, training reads it in shuffled groups of storage blocks:
    every train row once per epoch, in another order each epoch, never more than a group
    read at a time; the cached path yields the same rows."""
    import torch
    from tasks import train as tr
    from tasks.split import TRAIN
    monkeypatch.setattr(ds, "BLOCK", 64)  # many small blocks
    for k in range(3):
        make_drop(tmp_path / "drops" / f"d{k}", rows=300, seed=k)
    d = ds.load([tmp_path / "drops"])
    reads = []
    real = d.read
    monkeypatch.setattr(d, "read", lambda idx: reads.append(len(idx)) or real(idx))
    want = np.sort(real(d.index(TRAIN)), axis=0)
    streamed = tr.Batches(d, TRAIN, 50, shuffle=True, seed=0, cache=False, group=2)
    epochs = [torch.cat([x for x, _ in streamed]).numpy() for _ in range(2)]
    for got in epochs:
        np.testing.assert_array_equal(np.sort(got, axis=0), want)
    assert not np.array_equal(epochs[0], epochs[1]), "reshuffled each epoch"
    assert max(reads) <= 2 * 64 and len(reads) >= 2 * len(d.index(TRAIN)) // 128
    cached = tr.Batches(d, TRAIN, 50, shuffle=True, seed=0, cache=True)
    np.testing.assert_array_equal(np.sort(torch.cat([x for x, _ in cached]).numpy(), axis=0), want)
