"""bench/devsets.py's PyPI dev set reads network answers: a real HTTP server on 127.0.0.1 plays
PyPI's JSON API, with answers of the documented shape and hostile ones."""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import devsets  # noqa: E402

CAP = 4096
ANSWERS = {
    "good": {"info": {"summary": "Fast HTTP client", "classifiers": [
        "Topic :: Internet :: WWW/HTTP :: Dynamic Content", "License :: OSI Approved :: MIT License"]}},
    "no-topics": {"info": {"summary": "A tool", "classifiers": ["Programming Language :: Python"]}},
    "odd-types": {"info": {"summary": ["not", "a", "string"], "classifiers": ["Topic :: Utilities", 7, None]}},
    "no-info": {"info": ["a", "list"]},
    "big": {"info": {"summary": "x" * (2 * CAP), "classifiers": []}},
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        name = self.path.split("/")[2]
        if name == "not-json":
            body = b"<html>maintenance</html>"
        elif name in ANSWERS:
            body = json.dumps(ANSWERS[name]).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.fixture()
def pypi(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(devsets, "PYPI", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(devsets, "PYPI_MAX_BYTES", CAP)
    yield
    server.shutdown()


def test_a_project_gives_its_summary_and_only_its_topic_classifiers(pypi):
    assert devsets.pypi_project("good") == {"name": "good", "summary": "Fast HTTP client",
                                            "topics": ["Topic :: Internet :: WWW/HTTP :: Dynamic Content"]}
    assert devsets.pypi_project("no-topics")["topics"] == []


def test_hostile_or_missing_answers_give_no_row_and_no_error(pypi):
    assert devsets.pypi_project("odd-types") == {"name": "odd-types", "summary": "", "topics": ["Topic :: Utilities"]}
    for name in ("no-info", "big", "not-json", "gone"):
        assert devsets.pypi_project(name) is None, name


def test_a_name_from_the_index_stays_one_path_segment(pypi):
    # quoted whole: "good/x" is not a way to the project "good"'s answer (nor "../" anywhere else)
    assert devsets.pypi_project("good/x") is None


def test_tail_set_keeps_the_base_rows_and_labels_them_with_more_tags(tmp_path, monkeypatch):
    """pypi90: the base set's rows and embeddings, row for row, labeled with the n most frequent
    labels, rare ones included; the base is neither embedded again nor changed."""
    import numpy as np

    from tasks import contract as c
    ids = np.array(["a", "b", "c", "d"])
    txt = np.arange(4 * 3, dtype=np.float32).reshape(4, 3)
    base = tmp_path / "base"
    c.write_drop(base, "base", np.zeros((4, 8), np.float32), txt, ids, labels=np.ones((4, 1), np.uint8),
                 label_names=["T.A"], source="base set")
    monkeypatch.setitem(devsets.BUILDERS, "base", lambda out: base)
    # "e" is not a row of the base (none of its labels was kept there): it counts, but is no row
    tags = {"a": {"T :: A", "T :: B"}, "b": {"T :: A", "T :: C"}, "c": {"T :: A", "T :: B"}, "d": {"T :: A"},
            "e": {"T :: C"}}
    out = devsets.build_tail(tmp_path / "tail", "base", lambda: (list(tags), [""] * 5, list(tags.values())), n_tags=3)
    m = c.read_manifest(out)
    assert m.label_names == ["T.A", "T.B", "T.C"] and m.rows == 4 and "the 3 most frequent labels" in m.source
    assert c.load_array(out / "ids.npy").tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(c.load_array(out / "txt_emb.npy"), txt)
    np.testing.assert_array_equal(c.load_array(out / "labels.npy"), [[1, 1, 0], [1, 0, 1], [1, 1, 0], [1, 0, 0]])
    assert c.read_manifest(base).label_names == ["T.A"]
