"""The layout's own rules, checked on the source: no import cycles among emulate's and
the probes' modules (function-level imports count: a cycle deferred is still one)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

from .conftest import ROOT

PACKAGES = ("emulate", "probes")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The modules of this project that a file imports, wherever in the file."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from . import pool` names a module; `from .case import Case` a name in one.
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def import_graph() -> nx.DiGraph:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module(p) for p in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path in files:
        here = _module(path)
        for target in _imports(path) & modules:
            # A package's own __init__ re-exports its modules; importing a module
            # of a package runs that __init__ first, which is no dependency back.
            if target != here and not here.startswith(f"{target}.") and target not in PACKAGES:
                graph.add_edge(here, target)
    return graph


def test_no_import_cycles():
    cycles = sorted(nx.simple_cycles(import_graph()), key=len)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)


def test_the_graph_sees_real_imports():
    graph = import_graph()
    assert graph.has_edge("emulate.pipeline.runner", "emulate.model")
    assert graph.has_edge("emulate.sandbox.pool", "emulate.sandbox.process")
    assert graph.has_edge("probes.markov", "probes.babygpt")
    assert graph.has_edge("emulate.cli.main", "emulate.analysis.report")  # a function-level import


# Lower layers never import higher ones: the contract and the model layer (emulate's
# own modules), the sandbox and the probes know nothing of runs; analysis reads what
# runs wrote; the pipeline runs (and prints its summary through analysis); batches are
# one more way to run; the API, the CLI and the package's entry points sit on top.
LAYERS = {
    "emulate": 0,
    "emulate.sandbox": 0,
    "probes": 0,
    "emulate.analysis": 1,
    "emulate.pipeline": 2,
    "emulate.batch": 3,
    "emulate.studies": 4,
    "emulate.api": 4,
    "emulate.testing": 4,
    "emulate.cli": 5,
    "emulate.__main__": 6,
}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(module)


def test_packages_import_only_their_own_layer_or_lower():
    graph = import_graph()
    graph.remove_nodes_from(["emulate"])  # its lazy names point everywhere, on use
    upward = [(a, b) for a, b in graph.edges if layer(b) > layer(a)]
    assert not upward, "imports up a layer: " + "; ".join(f"{a} -> {b}" for a, b in upward)
