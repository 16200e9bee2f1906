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
