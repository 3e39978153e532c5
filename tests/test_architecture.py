"""The layering docs/architecture.md describes: imports go down its layer table (inside functions
too), no import circles, methods behind one contract."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from vid2reid.methods import REGISTRY, get_method
from vid2reid.methods.base import Method

PACKAGE = Path(__file__).resolve().parents[1] / "vid2reid"
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(path: Path, mods: dict[str, Path], source: str | None = None) -> set[str]:
    """vid2reid modules ``path`` (or ``source``) imports when it runs: anywhere, inside functions
    too, but under ``if TYPE_CHECKING``. ``from pkg import mod`` counts as importing ``pkg.mod``
    (the package itself only for names that are not modules)."""
    tree = ast.parse(path.read_text() if source is None else source)
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module in mods:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in mods else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in mods}
    return found


def _layers(text: str) -> dict[str, int]:
    """Module (or package, ending in ``/``) -> layer number, from the table under '## The layers'."""
    section = text.split("## The layers", 1)[1].split("\n## ", 1)[0]
    table: dict[str, int] = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*(\d+)\s[^|]*\|([^|]*)\|", line)
        if m:
            for name in re.findall(r"`([^`]+)`", m.group(2)):
                table[name] = int(m.group(1))
    return table


def _layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of ``vid2reid.x.y``: its own entry, else the nearest package entry ``x/``."""
    rel = module.split(".", 1)[1] if "." in module else module
    parts = rel.split(".")
    if rel in table:
        return table[rel]
    for n in range(len(parts), 0, -1):
        if "/".join(parts[:n]) + "/" in table:
            return table["/".join(parts[:n]) + "/"]
    return None


def layer_violations(mods: dict[str, Path], table: dict[str, int],
                     sources: dict[str, str] | None = None) -> list[str]:
    """Every import that goes up the layer table, and every module the table does not place."""
    sources = sources or {}
    problems = []
    for m, path in sorted(mods.items()):
        own = _layer_of(m, table)
        if own is None:
            problems.append(f"{m}: not in the layer table of docs/architecture.md")
            continue
        for d in sorted(_imports(path, mods, sources.get(m)) - {m}):
            theirs = _layer_of(d, table)
            if theirs is not None and theirs > own:
                problems.append(f"{m} (layer {own}) imports {d} (layer {theirs})")
    return problems


def test_imports_go_down_the_layer_table():
    table = _layers(ARCHITECTURE.read_text())
    assert len(set(table.values())) >= 6, table
    assert layer_violations(_modules(), table) == []


def test_an_upward_import_inside_a_function_is_caught():
    mods, table = _modules(), _layers(ARCHITECTURE.read_text())
    assert _layer_of("vid2reid.metrics", table) < _layer_of("vid2reid.report", table)
    source = (PACKAGE / "metrics.py").read_text() + (
        "\n\ndef _late():\n    from vid2reid.report import format_table  # up the table\n")
    found = layer_violations(mods, table, {"vid2reid.metrics": source})
    assert found == ["vid2reid.metrics (layer 6) imports vid2reid.report (layer 7)"], found
    # and an import that only a type checker reads is not one
    typing_only = (PACKAGE / "metrics.py").read_text() + (
        "\n\nif TYPE_CHECKING:\n    from vid2reid.cli import app\n")
    assert layer_violations(mods, table, {"vid2reid.metrics": typing_only}) == []


def test_config_knows_no_method():
    mods = _modules()
    assert not {d for d in _imports(mods["vid2reid.config"], mods)
                if d.startswith("vid2reid.methods")}


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


def test_method_settings_are_declared_and_grouped_in_help():
    """Each method declares its own settings; `vid2reid train --help` lists them under one
    panel per method, and every declared option exists."""
    import typer.main

    from vid2reid.cli import app
    from vid2reid.config import TrainConfig

    train = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    panel_of = {opt: getattr(p, "rich_help_panel", None) for p in train.params for opt in p.opts}
    fields = {f for f in TrainConfig.__dataclass_fields__}
    seen: dict[str, str] = {}
    for name in REGISTRY:
        method = get_method(name)
        panels = set()
        for setting, option in method.settings.items():
            assert setting in fields, f"{name}: {setting} is not a TrainConfig field"
            assert option in panel_of, f"{name}: {option} is not an option of vid2reid train"
            panels.add(panel_of[option])
        if method.settings:
            assert len(panels) == 1 and next(iter(panels)).endswith("settings"), (name, panels)
            panel = next(iter(panels))
            assert panel not in seen, f"{name} and {seen.get(panel)} share the panel {panel}"
            seen[panel] = name
    prefixed = {f for f in fields if f.split("_")[0] in ("himpc", "smsge", "msclr")}
    declared = {s for n in REGISTRY for s in get_method(n).settings}
    assert prefixed <= declared, prefixed - declared
