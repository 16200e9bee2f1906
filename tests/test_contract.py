import json

import numpy as np
import pytest

from tasks import contract as c
from tasks.validate import validate_drop
from tests.conftest import make_drop


def test_round_trip_preserves_arrays_and_manifest(tmp_path):
    rng = np.random.default_rng(3)
    img, txt = rng.standard_normal((25, 512)).astype(np.float32), rng.standard_normal((25, 768)).astype(np.float32)
    labels = (rng.random((25, 50)) < 0.2).astype(np.uint8)
    ids = np.array([f"id{i}" for i in range(25)])
    ts = np.arange(25, dtype=np.int64) + 1_700_000_000
    c.write_drop(tmp_path / "d", "d", img, txt, ids, labels=labels, timestamps=ts, source="unit")

    assert (tmp_path / "d" / c.MARKER).exists()
    assert validate_drop(tmp_path / "d").ok
    d = c.open_drop(tmp_path / "d")
    np.testing.assert_array_equal(d.img, img)
    np.testing.assert_array_equal(d.txt, txt)
    np.testing.assert_array_equal(d.labels, labels)
    np.testing.assert_array_equal(d.ids, ids)
    np.testing.assert_array_equal(d.timestamps, ts)
    m = d.manifest
    assert (m.rows, m.img_dim, m.txt_dim, m.n_labels, m.kind, m.source) == (25, 512, 768, 50, "labeled", "unit")
    assert m.label_names[0] == "topic_00" and m.label_names[-1] == "topic_49"
    raw = json.loads((tmp_path / "d" / c.MANIFEST).read_text())
    assert raw["dims"] == {"img": 512, "txt": 768} and set(raw["files"]) == {c.IMG, c.TXT, c.LABELS, c.IDS,
                                                                            c.TIMESTAMPS}


def test_dims_and_labels_come_from_the_manifest(tmp_path):
    make_drop(tmp_path / "other-encoder", img_dim=32, txt_dim=384, n_labels=7)
    d = c.open_drop(tmp_path / "other-encoder")
    assert (d.manifest.img_dim, d.manifest.txt_dim, d.manifest.n_labels) == (32, 384, 7)
    assert validate_drop(tmp_path / "other-encoder").ok


def test_chunked_writer_equals_one_shot(tmp_path):
    rng = np.random.default_rng(0)
    img, txt = rng.standard_normal((30, 4)).astype(np.float32), rng.standard_normal((30, 3)).astype(np.float32)
    ids = np.array([f"p{i:03d}" for i in range(30)])
    y = (rng.random((30, 2)) < 0.5).astype(np.uint8)
    w = c.DropWriter(tmp_path / "chunked", "chunked", 30, img_dim=4, txt_dim=3, label_names=["a", "b"], id_width=4)
    with w:
        for s in range(0, 30, 7):
            w.write(img[s:s + 7], txt[s:s + 7], ids[s:s + 7], y[s:s + 7])
    c.write_drop(tmp_path / "oneshot", "oneshot", img, txt, ids, labels=y, label_names=["a", "b"])
    a, b = c.read_manifest(tmp_path / "chunked"), c.read_manifest(tmp_path / "oneshot")
    assert a.files == b.files


def test_writer_failure_leaves_nothing(tmp_path):
    w = c.DropWriter(tmp_path / "short", "short", 10, img_dim=2, txt_dim=2, label_names=["a"])
    with pytest.raises(c.ContractError, match="5 rows written, 10 declared"):
        with w:
            w.write(np.zeros((5, 2), np.float32), np.zeros((5, 2), np.float32), np.array(list("abcde")),
                    np.zeros((5, 1), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_drop_id_must_be_a_plain_name(tmp_path):
    with pytest.raises(c.ContractError, match="drop id"):
        c.DropWriter(tmp_path / "x", "../escape", 1)


def test_writer_refuses_ids_it_would_truncate(tmp_path):
    w = c.DropWriter(tmp_path / "t", "t", 1, img_dim=1, txt_dim=1, label_names=["a"], id_width=4)
    with pytest.raises(c.ContractError, match="longer than 4"):
        with w:
            w.write(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), np.array(["abcde"]),
                    np.zeros((1, 1), np.uint8))


def test_empty_label_names_are_refused_not_replaced_by_defaults(tmp_path):
    make_drop(tmp_path / "d", n_labels=50)
    m = json.loads((tmp_path / "d" / c.MANIFEST).read_text())
    m["label_names"] = []
    (tmp_path / "d" / c.MANIFEST).write_text(json.dumps(m))
    report = validate_drop(tmp_path / "d")
    assert not report.ok and "label_names is empty" in report.summary()
    del m["label_names"]  # left out: WarCov's default names, as documented
    (tmp_path / "d" / c.MANIFEST).write_text(json.dumps(m))
    assert c.read_manifest(tmp_path / "d").label_names == c.default_label_names(50)
