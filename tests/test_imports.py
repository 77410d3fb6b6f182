"""No module of graphbp (or of its backends and built-in ops) imports, at run time, one that
imports it back: the import graph, read from the source, is a DAG.

Every import counts, at module level or inside a function, except under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    ROOT / folder
    for folder in (
        "graphbp",
        "backends/graphbp_numpy",
        "backends/graphbp_jax",
        "plugins/graphbp_ops",
    )
]


def _modules() -> dict[str, Path]:
    """Every module by dotted name; a package's __init__ is the package itself."""
    modules = {}
    for package in PACKAGES:
        for path in sorted(package.glob("*.py")):
            name = package.name if path.stem == "__init__" else f"{package.name}.{path.stem}"
            modules[name] = path
    return modules


class _Imports(ast.NodeVisitor):
    """The modules one module imports: (target, line), resolved against ``known``."""

    def __init__(self, name: str, is_package: bool, known: set[str]) -> None:
        self.package = name if is_package else name.rpartition(".")[0]
        self.known = known
        self.found: list[tuple[str, int]] = []

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parent = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{parent}.{base}" if base else parent
        self._add(base, node.lineno)
        for alias in node.names:  # `from graphbp import io` imports the module graphbp.io
            if f"{base}.{alias.name}" in self.known:
                self._add(f"{base}.{alias.name}", node.lineno)

    def _add(self, target: str, line: int) -> None:
        while target and target not in self.known:  # `import a.b.c`: the longest known module
            target = target.rpartition(".")[0]
        if target:
            self.found.append((target, line))


def import_graph() -> nx.DiGraph:
    """An edge a → b for every run-time import of b in a, with where it happens."""
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        visitor = _Imports(name, path.stem == "__init__", set(modules))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for target, line in visitor.found:
            if target != name and not graph.has_edge(name, target):  # keep the first line
                graph.add_edge(name, target, where=f"{path.relative_to(ROOT)}:{line}")
    return graph


def test_the_import_graph_is_real() -> None:
    graph = import_graph()
    assert {"graphbp", "graphbp.render", "graphbp_numpy", "graphbp_jax", "graphbp_ops"} <= set(
        graph
    )
    assert graph.has_edge("graphbp.page", "graphbp.render")
    assert graph.has_edge("graphbp.diagram", "graphbp.page")
    assert graph.has_edge("graphbp_ops.linear", "graphbp")  # `from graphbp import Op`
    assert graph.number_of_edges() > 20


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    steps = "\n".join(f"  {a} → {b}  ({graph.edges[a, b]['where']})" for a, b, *_ in cycle)
    raise AssertionError(
        f"an import loop; each step is a run-time import (move one under TYPE_CHECKING, or "
        f"move the code both need into a module of its own):\n{steps}"
    )
