"""kmix's modules import each other without a cycle: every `import` in kmix/, at module level or inside a
function, is an edge, so a cycle hidden behind a function-level import (which only works by import order)
fails here, naming the modules in it.

Imports under `if TYPE_CHECKING:` are not edges: they never run, so they cannot make a runtime cycle
(annotations may name a module that imports this one).
"""
from __future__ import annotations

import ast
from pathlib import Path

import kmix

ROOT = Path(kmix.__file__).resolve().parent  # the kmix package folder


def module_name(path: Path, root: Path = ROOT) -> str:
    """kmix/select/score.py -> kmix.select.score; a package's __init__.py is the package itself."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node in `tree`, skipping the body of `if TYPE_CHECKING:` (its else branch counts)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: kmix modules it imports}, over every .py file under `root` (kmix.* targets only)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)

    def resolve(name: str) -> str | None:
        """The module itself, else the nearest enclosing kmix module (kmix.x.name -> kmix.x)."""
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from . import x / from ..y import z
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # from kmix.x import name: the module kmix.x.name when it is one, else kmix.x
                targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in modules else prefix
                           for alias in node.names]
            for target in targets:
                if target == "kmix" or target.startswith("kmix."):
                    hit = resolve(target)
                    if hit is not None and hit != mod:
                        graph[mod].add(hit)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """(one cycle a -> b -> ... -> a per strongly connected component of more than one module, those components):
    Tarjan's algorithm; every module of a component lies on some cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, set(comp)) for comp in components], components


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path that returns to it."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(comp)}")  # a component always has one


def test_kmix_has_no_import_cycle():
    cycles, components = find_cycles(import_graph())
    assert not cycles, "import cycle(s) in kmix/:\n" + "\n".join(
        " -> ".join(c) + f" (modules tied in this knot: {', '.join(comp)})" for c, comp in zip(cycles, components))


def test_the_walker_sees_function_level_relative_and_from_imports(tmp_path):
    """The graph builder finds a cycle closed only by a function-level relative import, maps `from pkg import mod`
    to the module, and ignores imports under TYPE_CHECKING (so the test above cannot pass by not looking)."""
    pkg = tmp_path / "kmix"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from kmix.sub.a import f\n")
    (pkg / "sub" / "a.py").write_text("from kmix.sub import b\ndef f():\n    pass\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .c import h\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from kmix.sub.d import x\ndef h():\n    from ..sub.a import f\n")
    (pkg / "sub" / "d.py").write_text("import kmix.sub.c\n")
    graph = import_graph(pkg)
    assert graph["kmix.sub"] == {"kmix.sub.a"}
    assert graph["kmix.sub.a"] == {"kmix.sub.b"} and graph["kmix.sub.b"] == {"kmix.sub.c"}
    assert graph["kmix.sub.c"] == {"kmix.sub.a"}  # not kmix.sub.d: that import is for type checkers only
    assert find_cycles(graph)[0] == [["kmix.sub.a", "kmix.sub.b", "kmix.sub.c", "kmix.sub.a"]]
    (pkg / "sub" / "c.py").write_text("def h():\n    pass\n")
    assert find_cycles(import_graph(pkg)) == ([], [])


def test_graph_is_kmix_own_tree():
    """The walked tree is kmix's installed package: every .py file is a node, and known edges are there."""
    graph = import_graph()
    assert len(graph) == len(list(ROOT.rglob("*.py")))
    assert "kmix.sweep.plan" in graph["kmix.sweep.runner"] and "kmix.mix" in graph["kmix.select.anchored"]
