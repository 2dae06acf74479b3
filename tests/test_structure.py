"""The package's shape, checked from its source: the core never imports the notebook layer, no
module imports itself back through others, and modules and functions stay small enough to read."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "voxmagic"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    """voxmagic.x.y -> file, for every module of the package (the test helpers too)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports when it runs (at the top or inside functions;
    not the ``if TYPE_CHECKING:`` imports, which only type checkers follow)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "voxmagic")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] == "voxmagic":
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    out.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out.discard(name)
    return {m for m in out if m in known}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: runtime_imports(name, path, set(mods)) for name, path in mods.items()}


def test_the_core_never_imports_the_notebook_layer(graph):
    """Only ``load_ipython_extension`` (in the package's ``__init__``) reaches into the notebook
    layer; everything else works from plain Python."""
    offenders = {m: sorted(i for i in imports if i.startswith("voxmagic.notebook"))
                 for m, imports in graph.items()
                 if not m.startswith("voxmagic.notebook") and m != "voxmagic"}
    assert {m: i for m, i in offenders.items() if i} == {}
    assert {m for m in graph["voxmagic"] if m.startswith("voxmagic.notebook")} == {"voxmagic.notebook.magics"}


def test_no_import_circles(graph):
    """A module never depends on itself through others (lazy imports count too)."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return seen

    circles = sorted(m for m in graph if m != "voxmagic" and m in reach(m) - {"voxmagic"})
    assert circles == []


def test_the_leaves_import_nothing_heavy(graph):
    """Provider facts and bounds are read when the extension loads: they import no other
    module of voxmagic but the error tree."""
    assert graph["voxmagic.providers"] <= {"voxmagic.errors"}
    assert graph["voxmagic.limits"] <= {"voxmagic.errors"}


def _library() -> dict[str, Path]:
    return {m: p for m, p in modules().items() if not m.startswith("voxmagic.testing")}


def test_modules_and_functions_are_short():
    long_modules, long_functions = {}, {}
    for name, path in _library().items():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            long_modules[name] = lines
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{name}.{node.name}"] = length
    assert long_modules == {} and long_functions == {}


def test_the_notebook_layer_is_thin():
    """What only notebooks need stays a small share of the package's lines (the target: 15%;
    the package includes voxmagic.testing, the local server that demos use too)."""
    lines = {m: p.read_text().count("\n") for m, p in modules().items()}
    notebook = sum(n for m, n in lines.items() if m.startswith("voxmagic.notebook"))
    assert notebook / sum(lines.values()) <= 0.15
