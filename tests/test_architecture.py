"""The import graph keeps the design's shape (DESIGN.md "Layout", docs/architecture.md).

Parsed with `ast` from the source files, not imported, so a cycle hidden in a function body or
a TYPE_CHECKING block counts as much as one at module level: each is a place where two modules
each need the other, and the flow sources -> decode -> classify -> findings -> reports is no
longer one way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# repository folder -> the name it installs as (pyproject.toml maps them)
PACKAGES = {"analysis": "phonehome.analysis", "addons": "phonehome.addons"}
BARE_NAMES = frozenset({"analysis", "addons", "captures"})


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(REPO).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    found = {}
    for folder in PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[module_name(path)] = path
    return found


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, at any depth, relative ones resolved.

    `from a.b import c` yields `a.b` and `a.b.c` (c may be a module; non-modules are dropped
    later by the caller, which knows the module list).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            names.append((node.lineno, base))
            names.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return names


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the phonehome modules importing it runs: the target and its packages' __init__
    (except packages the importer itself lives in, which are already being imported)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own = set(ancestors(module))
        edges = set()
        for _, name in imported_names(path, module):
            for target in [*ancestors(name), name]:
                if target in modules and target not in own and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


MODULES = source_modules()
GRAPH = import_graph(MODULES)


def test_the_graph_sees_the_modules_and_their_imports() -> None:
    # guards the other tests against passing vacuously on an empty or unparsed tree
    assert "phonehome.analysis.pipeline" in MODULES and "phonehome.addons.recorder" in MODULES
    assert "phonehome.analysis.records" in GRAPH["phonehome.analysis.sources"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_relative_and_nested_imports_are_resolved(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from . import sibling\n    from ..up import thing\n")
    names = {name for _, name in imported_names(source, "phonehome.analysis.pkg.mod")}
    assert {"phonehome.analysis.pkg.sibling", "phonehome.analysis.up.thing"} <= names


def test_no_import_cycles_among_library_modules() -> None:
    library = {m: {t for t in e if t.startswith("phonehome.analysis")} for m, e in GRAPH.items()}
    library = {m: e for m, e in library.items() if m.startswith("phonehome.analysis")}
    assert find_cycles(library) == []


def test_no_import_cycles_at_all() -> None:
    assert find_cycles(GRAPH) == []


def test_the_library_never_imports_the_addons() -> None:
    offenders = [
        f"{MODULES[m].relative_to(REPO)}:{line} imports {name}"
        for m in MODULES
        if m.startswith("phonehome.analysis")
        for line, name in imported_names(MODULES[m], m)
        if name == "phonehome.addons" or name.startswith("phonehome.addons.")
    ]
    assert offenders == []


@pytest.mark.parametrize("folder", ["analysis", "addons", "tests", "benchmarks"])
def test_nothing_imports_a_bare_top_level_name(folder: str) -> None:
    offenders = []
    for path in sorted((REPO / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                heads = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                heads = [node.module.split(".")[0]]
            else:
                continue
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {h}" for h in heads if h in BARE_NAMES]
    assert offenders == []
