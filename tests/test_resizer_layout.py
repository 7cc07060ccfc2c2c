"""The resizing core's own import graph: functions first, modules on top, no circle (issue 30).

import-linter checks the package's layers with TYPE_CHECKING imports left out; this test reads
every import of ``resizing/`` (TYPE_CHECKING blocks and function bodies included)."""

from __future__ import annotations

import ast
from pathlib import Path

import downsizenet_hub.resizing as resizing

PACKAGE = "downsizenet_hub.resizing"
#: The leaf utilities the core may use (they import nothing of the package; pyproject's
#: import-linter contract allows the same): atomic writes and the folders, for the native
#: kernels' build cache.
LEAVES = {"downsizenet_hub.atomic", "downsizenet_hub.paths"}


def _imports() -> dict[str, set[str]]:
    """Module name -> the ``resizing`` modules it imports anywhere in its source."""
    graph: dict[str, set[str]] = {}
    for path in sorted(Path(resizing.__file__).parent.glob("*.py")):
        if path.stem == "__init__":  # the package's lazy names, not a dependency of its modules
            continue
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith(PACKAGE + "."):
                    found.add(name.split(".")[2])
                elif name.startswith("downsizenet_hub") and name != PACKAGE:
                    if name in LEAVES or name.rsplit(".", 1)[0] in LEAVES:
                        continue
                    raise AssertionError(f"resizing/{path.name} imports {name}")
        graph[path.stem] = found - {path.stem}
    return graph


def test_resizing_has_no_import_circle() -> None:
    graph = _imports()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import circle: " + " -> ".join([*trail, module])
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


def test_the_functional_form_imports_no_module_class() -> None:
    graph = _imports()
    assert not graph["functional"] & {"downsizenet", "fixed", "talebi", "strided", "texture"}
    assert "functional" in graph["downsizenet"] and "functional" in graph["fixed"]
