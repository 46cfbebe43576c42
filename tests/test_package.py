"""The package's shape: compiled kernels a reader can hold, and imports that go one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import associative_embedding as ae

PACKAGE = Path(ae.__file__).parent
MAX_LINES = 100  # statements of a kernel's body, its docstring left out
MAX_DEPTH = 5  # nested for / while / if / with / try; an elif is not deeper than its if
MAX_ARGS = 8


_DECORATORS = ("njit", "kernel(")  # numba's, and the decoder's (``_decode/jit.py``)


def _jitted(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            ast.unparse(d).startswith(_DECORATORS) for d in node.decorator_list
        ):
            yield node


def _body(fn: ast.FunctionDef) -> list[ast.stmt]:
    first = fn.body[0]
    doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return fn.body[1:] if doc else fn.body


_BLOCKS = (ast.For, ast.While, ast.If, ast.With, ast.Try)


def _depth(stmts: list[ast.stmt], level: int = 0) -> int:
    deepest = level
    for s in stmts:
        if not isinstance(s, _BLOCKS):
            continue
        inner = level + 1
        deepest = max(deepest, _depth(s.body, inner))
        orelse = getattr(s, "orelse", [])
        if isinstance(s, ast.If) and len(orelse) == 1 and isinstance(orelse[0], ast.If):
            deepest = max(deepest, _depth(orelse, level))  # elif: same level as the if
        else:
            deepest = max(deepest, _depth(orelse, inner))
        for handler in getattr(s, "handlers", []):
            deepest = max(deepest, _depth(handler.body, inner))
        deepest = max(deepest, _depth(getattr(s, "finalbody", []), inner))
    return deepest


def _kernels():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in _jitted(tree):
            yield path.relative_to(PACKAGE).as_posix(), fn


def test_the_style_checks_can_fail():
    deep = ast.parse(
        "def f(a):\n"
        "    for i in a:\n        for j in a:\n            if i:\n"
        "                while j:\n                    if j:\n                        if i:\n"
        "                            pass\n"
    ).body[0]
    flat = ast.parse("def f(a):\n    if a:\n        pass\n    elif a:\n        pass\n").body[0]
    assert _depth(deep.body) == 6
    assert _depth(flat.body) == 1


def test_there_are_kernels_to_check():
    names = {fn.name for _, fn in _kernels()}
    assert {"find_candidates", "refine_image", "refine_crowd", "munkres_assign"} <= names


def test_decoder_kernels_take_the_shared_options():
    """Every kernel of ``_decode`` is compiled through ``jit.kernel``, none with njit directly.

    ``kernel`` carries numba's numpy error model, without which a division's
    raise path keeps the reference counting of a kernel's array arguments.
    """
    from numba.core.registry import CPUDispatcher

    from associative_embedding._decode import jit, missing, tiles

    direct = [
        f"{p}::{fn.name}" for p, fn in _kernels() if p.startswith("_decode/") and _uses_njit(fn)
    ]
    assert direct == []
    assert jit.OPTIONS["error_model"] == "numpy"
    for fn in (missing.refine_image, tiles.tile_bounds, missing.refine_crowd):
        assert isinstance(fn, CPUDispatcher)
        assert fn.targetoptions["error_model"] == "numpy"
        assert fn.targetoptions["nogil"]
        assert fn._cache is not None and type(fn._cache).__name__ == "FunctionCache"


def _uses_njit(fn: ast.FunctionDef) -> bool:
    return any(ast.unparse(d).startswith("njit") for d in fn.decorator_list)


@pytest.mark.parametrize("where", [f"{p}::{fn.name}" for p, fn in _kernels()])
def test_kernels_are_short_shallow_and_take_few_arguments(where):
    path, name = where.split("::")
    fn = next(f for p, f in _kernels() if p == path and f.name == name)
    body = _body(fn)
    lines = body[-1].end_lineno - body[0].lineno + 1
    assert lines <= MAX_LINES, f"{where}: {lines} lines"
    assert _depth(body) <= MAX_DEPTH, f"{where}: nested {_depth(body)} deep"
    assert len(fn.args.args) <= MAX_ARGS, f"{where}: {len(fn.args.args)} arguments"


def _imports(path: Path) -> set[str]:
    """Modules of the package ``path`` imports, anywhere in the file, as dotted names."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
    if module.endswith(".__init__"):
        module = module[: -len(".__init__")]
        package = module
    else:
        package = module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x: x may be a module
                found.update(f"{target}.{a.name}" for a in node.names)
            found.add(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE.name):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(PACKAGE.name))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        modules[name.removesuffix(".__init__")] = path
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def test_no_module_imports_the_package_init():
    graph = _graph()
    offenders = sorted(m for m, deps in graph.items() if PACKAGE.name in deps)
    assert offenders == []


def _find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first search, as the cycle it closes."""
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_cycle_finder_finds_cycles():
    assert _find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    assert _find_cycles(_graph()) == []


def test_import_graph_sees_the_decoder_layers():
    graph = _graph()
    assert "associative_embedding._decode.options" in graph["associative_embedding.decoding"]
    assert "associative_embedding._decode.peaks" in graph["associative_embedding._decode.pipeline"]
