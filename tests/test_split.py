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


def rare_topics_drop(path, rows, seed, start=0, n_topics=30):
    """Many topics with 4-11 positives each: the hash split alone leaves some without test or val rows."""
    from tasks import contract as c
    rng = np.random.default_rng(seed)
    y = np.zeros((rows, n_topics), np.uint8)
    for k in range(n_topics):
        y[rng.choice(rows, 4 + k % 8, replace=False), k] = 1
    c.write_drop(path, path.name, rng.standard_normal((rows, 4)).astype(np.float32),
                 rng.standard_normal((rows, 3)).astype(np.float32),
                 np.array([f"r{seed}-{start + i}" for i in range(rows)]), labels=y,
                 label_names=[f"t{k}" for k in range(n_topics)], source="test")
    return path


def missing(d, which):
    return [k for k in range(d.labels.shape[1]) if not d.labels[d.split == which, k].any()]


def test_rare_topics_get_val_and_test_rows_and_old_rows_stay_when_drops_are_added(tmp_path):
    from tasks.split import TEST, TRAIN, VAL, wanted
    rare_topics_drop(tmp_path / "drops" / "a-001", 2000, seed=1)
    before = ds.load([tmp_path / "drops"])
    plain = sp.assign(before.ids)
    # the hash split alone fails some topics; the top-up gives each its share, and leaves train the rest
    assert [k for k in range(30) if not before.labels[plain == TEST, k].any()], "the example must need the rule"
    assert missing(before, TEST) == [] and missing(before, VAL) == []
    for k in range(30):
        n = int(before.labels[:, k].sum())
        for which, f in ((TEST, 0.15), (VAL, 0.15)):
            assert before.labels[before.split == which, k].sum() >= wanted(n, f)
        assert before.labels[before.split == TRAIN, k].sum() >= n // 2
    # only posts of under-represented topics moved, only out of train, a few of them
    moved = before.split != plain
    assert moved.any() and (plain[moved] == TRAIN).all() and (before.labels[moved].sum(1) > 0).all()
    assert moved.mean() < 0.04, moved.mean()

    rare_topics_drop(tmp_path / "drops" / "a-002", 1500, seed=2)
    after = ds.load([tmp_path / "drops"])
    old = dict(zip(before.ids, before.split))
    assert all(old[i] == s for i, s in zip(after.ids, after.split) if i in old), "no old post moved"
    assert missing(after, TEST) == [] and missing(after, VAL) == []
    # the same split on a window of the latest drop: a post has one split whatever the window
    window = ds.load([tmp_path / "drops"], last=1)
    full = dict(zip(after.ids, after.split))
    assert len(window.ids) == 1500 and all(full[i] == s for i, s in zip(window.ids, window.split))


def test_a_topic_with_three_positives_keeps_the_hash_split():
    from tasks.split import wanted
    assert wanted(np.array([1, 2, 3]), 0.15).tolist() == [0, 0, 0]
    assert wanted(np.array([4, 10, 40, 10_000]), 0.15).tolist() == [1, 2, 5, 5]
