"""Import hygiene: no import cycles (also through function-level imports), short
functions, a cheap ``import pyvae`` and ``python -m pyvae``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyvae"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name: ``pyvae``, ``pyvae.io``, ...,
    ``pyvae.compress`` (a package's ``__init__.py``), ``pyvae.compress.lossless``."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """The Import and ImportFrom nodes anywhere in ``tree`` (inside functions too),
    except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports_of(child)
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _imports(node)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]  # a module's siblings live in its parent package
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, read statically with ``ast``.

    ``from . import x`` is an edge to the submodule ``pyvae.x`` when there is one and to
    the package otherwise; ``from .x import name`` is an edge to ``pyvae.x`` (and to
    ``pyvae.x.name`` if that is a submodule). Importing a submodule also runs its parent
    packages' ``__init__``; those implicit edges are left out (else every module would
    be in a cycle with ``pyvae``). Imports by ``importlib`` are not seen.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _resolve(name, path.name == "__init__.py", node)
                submodules = [f"{source}.{a.name}" for a in node.names]
                targets = [m for m in submodules if m in modules]
                if len(targets) < len(submodules):  # a name defined by ``source`` itself
                    targets.append(source)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each
    sorted, as readable lists of module names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines from its ``def`` to its last line, less its docstring's."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1
    return lines


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``{"module.qualname": lines}`` for each function (or method) longer than
    ``limit`` lines of code (:func:`code_lines`)."""
    out = {}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        todo = [(node, name) for node in tree.body]
        while todo:
            node, prefix = todo.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                qualname = f"{prefix}.{node.name}"
                if not isinstance(node, ast.ClassDef):
                    lines = code_lines(node)
                    if lines > limit:
                        out[qualname] = lines
                todo.extend((child, qualname) for child in ast.iter_child_nodes(node))
            else:
                todo.extend((child, prefix) for child in ast.iter_child_nodes(node))
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- the tests
def test_the_graph_reader_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "pyvae.compress.lossless" in graph["pyvae.compress"]  # from . import lossless
    assert "pyvae.io" in graph["pyvae.models.vae"]  # inside VAE.save
    assert "pyvae.checks" in graph["pyvae.compress.lossless"]  # from ..checks import ...
    assert "pyvae" not in graph["pyvae.cli"]  # `from . import data` is the submodule
    assert "pyvae.model" not in graph["pyvae.io"]  # only under `if TYPE_CHECKING:`
    assert (
        graph["pyvae.checkpoint"] >= {"pyvae._files"}
        and "pyvae.io" not in graph["pyvae.checkpoint"]
    )
    assert "pyvae._version" in graph["pyvae.compress.lossless"]
    assert "pyvae" not in graph["pyvae.compress.lossless"]


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle through the first module of ``component`` (breadth first),
    as ``[a, b, ..., a]``."""
    start, inside = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    raise AssertionError(f"{component} is not a cycle")


def test_no_import_cycles():
    graph = import_graph()
    found = [" -> ".join(cycle_path(graph, c)) for c in cycles(graph)]
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(found)


def test_no_function_is_longer_than_80_lines():
    found = long_functions()
    assert not found, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(
        f"{k}: {v} lines" for k, v in found.items()
    )


def test_fit_is_a_facade_of_at_most_60_lines():
    assert long_functions(limit=60).get("pyvae.train.fit.fit") is None
    assert "pyvae.train.trainer.Trainer.build" not in long_functions(limit=60)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


LAZY = ("plots", "compress", "anomaly", "cli")


def test_import_pyvae_is_cheap_and_the_rest_loads_on_first_use():
    code = f"""
import sys
import pyvae
assert "matplotlib" not in sys.modules, "import pyvae imported matplotlib"
for name in {LAZY!r}:
    assert "pyvae." + name not in sys.modules, "import pyvae imported pyvae." + name
    assert name in pyvae.__all__ and name in dir(pyvae), name
assert callable(pyvae.plots.samples_figure)
assert "pyvae.plots" in sys.modules and "matplotlib" in sys.modules
from pyvae import compress, anomaly
from pyvae.compress import lossless
assert compress.lossless is lossless and callable(anomaly.score)
assert callable(pyvae.cli.main)
try:
    pyvae.no_such_thing
except AttributeError as e:
    assert "no_such_thing" in str(e)
else:
    raise AssertionError("no AttributeError")
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr


def test_python_dash_m_pyvae_is_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "pyvae", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: pyvae" in result.stdout and "train" in result.stdout


def test_version_has_one_home():
    import pyvae
    from pyvae._version import __version__

    assert pyvae.__version__ == __version__
    assert "__version__" in pyvae.__all__


@pytest.mark.parametrize("module", ["pyvae._files", "pyvae._version"])
def test_leaf_modules_import_nothing_from_pyvae(module):
    assert not import_graph()[module]
