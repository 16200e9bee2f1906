"""No import circles among the modules of tasks/ (function-level imports included: a circle
there only waits for the call that closes it)."""
import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports() -> dict[str, set[str]]:
    mods = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (ROOT / "tasks").rglob("*.py")}
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                deps |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        graph[name] = {d for d in deps if d in mods and d not in (name, "tasks")}
    return graph


def test_no_import_circles():
    graph = imports()
    assert "tasks.monitor" in graph and "tasks.monitoring" in graph["tasks.monitor"]  # the graph is read
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle
