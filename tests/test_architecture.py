"""The layering docs/architecture.md describes: no import circles, methods behind one contract."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from vid2reid.methods import REGISTRY, get_method
from vid2reid.methods.base import Method

PACKAGE = Path(__file__).resolve().parents[1] / "vid2reid"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    """vid2reid modules ``path`` imports when it runs (anywhere but under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module in mods:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in mods}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in mods}
    return found


def test_no_import_circle():
    mods = _modules()
    graph = {m: _imports(p, mods) - {m} for m, p in mods.items()}
    # a package importing its own submodule (re-exports, a registry) is not a circle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(d):] + [m, d])
                            if d in path else f"import circle through {m} -> {d}")
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_no_method_imports_another():
    mods = _modules()
    methods = set(REGISTRY.values())
    for name in methods:
        other = _imports(mods[name], mods) & (methods - {name})
        assert not other, f"{name} imports {sorted(other)}"


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_method_declares_the_contract(name: str):
    method = get_method(name)
    assert isinstance(method, Method) and method.name == name
    module = importlib.import_module(REGISTRY[name])
    for fn in (method.build_model, method.prepare_epoch, method.batch_loss, method.embed):
        assert fn.__module__ == module.__name__, f"{name}: {fn.__qualname__} from {fn.__module__}"
    if method.several_layouts:
        assert method.training_sequences is not None, name
