"""jetlab's import layering, read from the source (AST), so a lazy import inside a function counts too.

Data flows one way (source -> schema -> Dataset -> model -> training -> tasks -> notebook/CLI): a
module imports only from its own layer or the layers below it, and no set of modules imports each
other in a circle (``if TYPE_CHECKING:`` imports included: a circle of type hints is still a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jetlab"

#: layer of each top-level unit of jetlab (its sub-package or module); a unit imports from its own
#: layer or lower ones only. Units not listed are refused, so a new one must be placed here.
LAYERS: dict[str, int] = {
    "__init__": 0,
    "_io": 0,
    "_logging": 0,
    "options": 0,
    "progress": 0,
    "physics": 1,
    "data": 1,
    "simulator": 1,
    "model": 2,
    "plot": 2,
    "train": 3,
    "widgets": 3,
    "tasks": 4,
    "notebook_params": 5,
    "stored_outputs": 5,
    "plan": 5,
    "notebook": 6,
    "runner": 7,
    "cli": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported jetlab module, line) for every import statement in ``path``, at any depth."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import name`: name may be a submodule (then that is what is imported)
            out += [(f"{source}.{a.name}", node.lineno) for a in node.names]
    return [(t, line) for t, line in out if t == "jetlab" or t.startswith("jetlab.")]


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}

    def existing(name: str) -> str:  # `from jetlab.x import func` -> the module jetlab.x
        while name not in modules and "." in name:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {m: set() for m in modules}
    lines: dict[tuple[str, str], int] = {}
    for f in files:
        mod = _module_name(f)
        for target, line in _imports(f):
            t = existing(target)
            if t != mod:
                edges[mod].add(t)
                lines.setdefault((mod, t), line)
    return edges, lines


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _graph()[0]}
    assert units - set(LAYERS) == set(), "place each new jetlab unit in LAYERS"


def test_no_import_runs_up_a_layer():
    edges, lines = _graph()
    upward = sorted(
        f"{m} (line {lines[(m, t)]}) imports {t}"
        for m, targets in edges.items()
        for t in targets
        if LAYERS.get(_unit(t), 99) > LAYERS.get(_unit(m), 99)
    )
    assert upward == []


@pytest.mark.parametrize(
    "module, forbidden",
    [("jetlab.tasks", ("jetlab.notebook", "jetlab.runner", "jetlab.cli")), ("jetlab.runner", ("jetlab.cli",))],
)
def test_named_boundaries(module, forbidden):
    edges, _ = _graph()
    crossing = sorted(
        (m, t)
        for m, ts in edges.items()
        if m == module or m.startswith(module + ".")
        for t in ts
        if t.startswith(forbidden)
    )
    assert crossing == []


def test_no_import_cycles():
    edges, lines = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    described = [
        "; ".join(f"{a} -> {b} (line {lines[(a, b)]})" for a in c for b in sorted(edges[a]) if b in c) for c in cycles
    ]
    assert described == []


def test_the_checks_see_a_violation(tmp_path, monkeypatch):
    """The scanner itself: an upward import inside a function and a two-module circle are found."""
    pkg = tmp_path / "jetlab"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("def f():\n    from jetlab.cli import main\n    from . import b\n")
    (pkg / "data" / "b.py").write_text("from jetlab.data.a import f\n")
    (pkg / "cli.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", pkg)
    with pytest.raises(AssertionError, match=r"jetlab\.data\.a \(line 2\) imports jetlab\.cli"):
        test_no_import_runs_up_a_layer()
    with pytest.raises(AssertionError, match=r"jetlab\.data\.a -> jetlab\.data\.b"):
        test_no_import_cycles()
