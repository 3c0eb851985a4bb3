"""No import cycle anywhere in fvopt, and bench's report layers import only downwards.

The import graph is read from the source with `ast` (nothing is imported): every `import`,
`from x import y` (relative ones too, and `from . import module`), at module level or inside a
function, is an edge from the importing module to each fvopt module it names. A cycle, even one
hidden in a function-level import, means two modules cannot be understood (or moved) apart.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fvopt"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The fvopt modules `name` (at `path`) imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def add(target: str) -> None:
        # `import fvopt.a.b` needs fvopt.a.b; a name that is not a module (`from .a import f`)
        # resolves to its module
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fvopt":
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] != "fvopt":
                continue
            for alias in node.names:  # `from . import x`: x may be a module of its own
                candidate = f"{origin}.{alias.name}"
                add(candidate if candidate in known else origin)
    return out


@functools.lru_cache(maxsize=1)
def import_graph() -> nx.DiGraph:
    found = modules()
    graph = nx.DiGraph()
    for name, path in found.items():
        graph.add_node(name)
        for target in imported(name, path, set(found)):
            graph.add_edge(name, target)
    return graph


def test_the_graph_sees_relative_function_level_and_package_imports():
    graph = import_graph()
    assert graph.has_edge("fvopt.bench.report", "fvopt.bench.store")  # from .store import Store
    assert graph.has_edge("fvopt.bench.comparison", "fvopt.bench.anytime")  # from . import anytime, stats
    assert graph.has_edge("fvopt.bench.runner", "fvopt.runtime.memory")  # from ..memory import ... inside a function
    assert graph.has_edge("fvopt.bench.anytime", "fvopt.stops")


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycle = nx.find_cycle(graph.subgraph(component))
            cycles.append(" -> ".join([a for a, _ in cycle] + [cycle[0][0]]))
    assert not cycles, "import cycles: " + "; ".join(cycles)


# bench's reporting modules from the bottom up: a module imports only modules of lower layers (or
# of the running side: store, spec, cell, runner, judging, rescore, which no report module is imported by)
LAYERS = [
    ["rows"],
    ["tables", "export"],
    ["plots"],
    ["quality_plots"],
    ["metrics", "anytime", "stats", "analysis"],
    ["comparison", "quality_report"],
    ["html_report"],
    ["sections"],
    ["report"],
]


@pytest.mark.parametrize("module", [m for layer in LAYERS for m in layer])
def test_bench_report_modules_import_only_downwards(module):
    graph = import_graph()
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    mine = f"fvopt.bench.{module}"
    above = [
        t
        for t in graph.successors(mine)
        if t.startswith("fvopt.bench.") and level.get(t.rpartition(".")[2], -1) >= level[module]
    ]
    assert not above, f"{mine} imports {above}, not below it"
    assert set(level) | {"store", "spec", "cell", "runner", "judging", "rescore", "__init__"} >= {
        m.rpartition(".")[2] for m in modules() if m.startswith("fvopt.bench.")
    } | {"__init__"}, "a bench module is in no layer: add it to LAYERS"
