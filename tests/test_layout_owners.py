"""Every file name of a layout is spelled in its owner only: the run dir (tasks/rundir.py), the
drop and dataset (tasks/layout.py), scoring and monitoring (tasks/monitoring.py), the Triton
repository and its version dirs (tasks/triton/repo.py), the quarantine (include/drops.py).
Everything else names them through the owner's constants."""
import re
from pathlib import Path

from include import drops
from tasks import layout, monitoring, rundir
from tasks.triton import repo

REPO = Path(__file__).resolve().parent.parent
OWNERS = {rundir: "tasks/rundir.py", layout: "tasks/layout.py", monitoring: "tasks/monitoring.py",
          repo: "tasks/triton/repo.py", drops: "include/drops.py"}
EXEMPT: set[str] = set()
FILE_NAME = re.compile(r"[._]?[\w-]+\.[a-z]+|[._][\w-]+")  # manifest.json, _SUCCESS, .rejected


def owned() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for module, path in OWNERS.items():
        for key, value in vars(module).items():
            if key.isupper() and isinstance(value, str) and FILE_NAME.fullmatch(value):
                names.setdefault(value, set()).add(path)
    return names


def test_the_owners_declare_the_layouts():
    names = owned()
    for name in ("model.onnx", "blessing.json", "_SUCCESS", "manifest.json", "schema.json", "report.json",
                 "input_stats.npz", "config.pbtxt", "labels.txt", "last_good.json", ".rejected"):
        assert name in names, name


def test_no_layout_file_name_is_spelled_outside_its_owner():
    names = owned()
    found = []
    for top in ("tasks", "include", "dags"):
        for p in (REPO / top).rglob("*.py"):
            rel = str(p.relative_to(REPO))
            if rel in EXEMPT:
                continue
            text = p.read_text()
            for name, owners in names.items():
                if rel not in owners and re.search(r"""(["'])%s\1""" % re.escape(name), text):
                    found.append((rel, name))
    assert found == []
