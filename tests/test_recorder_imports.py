"""The recorder's modules import one way (patches -> recorder -> session -> probes -> base): no
import cycle inside `mlflow_nnaudit/recorder/`, late imports inside functions included, and no
probe reaches back into the recorder's state (the probes see only the probe interface).

Read from the source with `ast` (nothing is imported), so it also runs as a script that prints
the graph and any cycle:

    python tests/test_recorder_imports.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "mlflow_nnaudit" / "recorder"
PREFIX = "mlflow_nnaudit.recorder"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PREFIX, *parts])


def import_graph() -> dict[str, set[str]]:
    """module -> the recorder modules it imports (at module level or inside functions)."""
    modules = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                found = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in found:
                while target and target not in modules:  # `from pkg import module` or `import pkg.mod`
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from where it was met)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_no_import_cycle_inside_the_recorder():
    graph = import_graph()
    assert f"{PREFIX}.patches" in graph and f"{PREFIX}.recorder" in graph
    assert cycles(graph) == []


def test_probes_see_only_the_probe_interface():
    """A probe imports other probes (and torch), never the state machine, the session, the
    patches or the sink: everything it sees comes through `probes/base.py`'s methods."""
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(f"{PREFIX}.probes"):
            outside = {t for t in targets if not t.startswith(f"{PREFIX}.probes")}
            assert outside == set(), (name, outside)


if __name__ == "__main__":
    g = import_graph()
    for module in sorted(g):
        print(
            module.removeprefix(PREFIX + "."), "->", ", ".join(sorted(t.removeprefix(PREFIX + ".") for t in g[module]))
        )
    found = cycles(g)
    print("cycles:", found or "none")
    sys.exit(1 if found else 0)
