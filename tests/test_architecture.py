"""core/'s layering, checked from the import graph (issue 12, docs/architecture.md).

Every import in core/ counts, at module level or inside a function, `TYPE_CHECKING` blocks
included: an import inside a function is still a dependency, only a later one. A module's
layer is its sub-package of core/ (a top-level module belongs to the foundation). A layer
may import itself and the layers below it, never a later one; no two layers may import
each other (a cycle); core never imports the built-in plugins (`deltav2a_plugins`), which
register through the entry-point group exactly like a third-party package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"
PKG = "deltav2a"
PLUGINS_PKG = "deltav2a_plugins"
FOUNDATION = "(top-level)"

#: lowest first. A newcomer reads the transfer path upward: media -> api -> render -> style
#: (the label) -> model (label -> effect parameters) -> transfer; the offline packages and
#: the applications sit above it, the CLI on top.
LAYERS: tuple[str, ...] = (
    FOUNDATION,   # errors, atomic, fileio, artifact, executor, config
    "media",      # media files and arrays, Wand glue, plots, example media (no plugins)
    "api",        # the plugin contract: hooks, registry, params, effect/encoder bases, vocabulary type
    "render",     # an effect chain -> rendered audio
    "style",      # vocabularies by name, embeddings, StyleLabel, calibration, media pairs
    "model",      # StyleLabel -> EffectPlan: layouts, controllers' shared code, weights, strength, search
    "transfer",   # TransferModel: image pair + clip -> A'
    "evaluation",
    "training",
    "database",
    "analysis",
    "experiment",  # run folders, stages, reports, diagnostics
    "drums",
    "study",
    "web",
    "scaffold",
    "cli",
)
MAX_TOP_LEVEL_MODULES = 8


# ------------------------------------------------------------------ the graph


def module_name(path: Path, root: Path) -> str:
    parts = [PKG, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything `module` imports (modules, or module.name for from-imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
        elif (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
              and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
              in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)  # importlib.import_module("pkg.mod")
    return found


def import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """module -> the modules (or foreign names) it imports; `from m import x` counts m.x when x is a module."""
    sources = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for mod, path in sources.items():
        deps: set[str] = set()
        for name in imports_of(path.read_text(encoding="utf-8"), mod, path.name == "__init__.py"):
            if name == PLUGINS_PKG or name.startswith(PLUGINS_PKG + "."):
                deps.add(name)
            elif name in sources:
                deps.add(name)
            elif name.startswith(PKG + "."):
                parent = name.rpartition(".")[0]  # `from deltav2a.x import attr`
                if parent in sources:
                    deps.add(parent)
        deps.discard(mod)
        graph[mod] = deps
    return graph


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != PKG:
        raise ValueError(module)
    if len(parts) == 1:
        return FOUNDATION
    if len(parts) == 2 and not (CORE / parts[1]).is_dir():
        return FOUNDATION
    return parts[1]


def check_layers(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS,
                 layer=layer_of) -> list[str]:
    """Every layering problem of `graph`, one line each (empty: the graph is layered)."""
    rank = {name: i for i, name in enumerate(layers)}
    problems: list[str] = []
    between: dict[str, set[str]] = {}
    for mod in sorted(graph):
        here = layer(mod)
        if here not in rank:
            problems.append(f"{mod}: layer '{here}' is not declared in LAYERS")
            continue
        for dep in sorted(graph[mod]):
            if dep == PLUGINS_PKG or dep.startswith(PLUGINS_PKG + "."):
                problems.append(f"{mod} imports the built-in plugins ({dep}): go through the registry")
                continue
            there = layer(dep)
            if there not in rank:
                problems.append(f"{mod} -> {dep}: layer '{there}' is not declared in LAYERS")
                continue
            if there != here:
                between.setdefault(here, set()).add(there)
            if rank[there] > rank[here]:
                problems.append(f"upward import: {mod} ({here}) -> {dep} ({there})")
    problems.extend(f"cycle between layers: {' -> '.join(c)}" for c in layer_cycles(between))
    return problems


def layer_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of layers (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:  # walk a closed path inside the group, for the message
        path, seen = [group[0]], {group[0]}
        while True:
            nxt = sorted(w for w in edges.get(path[-1], ()) if w in group)
            step = next((w for w in nxt if w not in seen), None)
            if step is None:
                path.append(next(w for w in nxt if w in seen))
                break
            path.append(step)
            seen.add(step)
        cycles.append(path[path.index(path[-1]):])
    return cycles


# ------------------------------------------------------------------ the checker can fail


def _toy_layer(module: str) -> str:
    return module.split(".")[1]


def test_checker_accepts_a_layered_graph():
    graph = {"deltav2a.low.a": set(), "deltav2a.high.b": {"deltav2a.low.a"},
             "deltav2a.high.c": {"deltav2a.high.b"}}
    assert check_layers(graph, ("low", "high"), _toy_layer) == []


def test_checker_finds_an_upward_import():
    graph = {"deltav2a.low.a": {"deltav2a.high.b"}, "deltav2a.high.b": set()}
    problems = check_layers(graph, ("low", "high"), _toy_layer)
    assert "upward import: deltav2a.low.a (low) -> deltav2a.high.b (high)" in problems


def test_checker_finds_a_cycle_between_layers():
    graph = {"deltav2a.x.a": {"deltav2a.y.b"}, "deltav2a.y.b": {"deltav2a.z.c"},
             "deltav2a.z.c": {"deltav2a.x.a"}}
    problems = check_layers(graph, ("x", "y", "z"), _toy_layer)
    assert "cycle between layers: x -> y -> z -> x" in problems


def test_checker_finds_plugin_imports_and_undeclared_layers():
    graph = {"deltav2a.low.a": {"deltav2a_plugins.note_effects"}, "deltav2a.new.b": set()}
    problems = check_layers(graph, ("low",), _toy_layer)
    assert problems == ["deltav2a.low.a imports the built-in plugins (deltav2a_plugins.note_effects): "
                        "go through the registry",
                        "deltav2a.new.b: layer 'new' is not declared in LAYERS"]


def test_graph_sees_function_level_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "core"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for d in (pkg, pkg / "low", pkg / "high"):
        (d / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "low" / "a.py").write_text(
        "def f():\n    from ..high import b\n    from ..errors import X\n"
        "def g():\n    import importlib\n    importlib.import_module('deltav2a_plugins.x')\n")
    (pkg / "high" / "b.py").write_text("from ..low.a import f\n")
    graph = import_graph(pkg)
    # `from ..high import b` runs high/__init__ too: both are dependencies
    assert graph["deltav2a.low.a"] == {"deltav2a.high", "deltav2a.high.b", "deltav2a.errors",
                                       "deltav2a_plugins.x"}
    assert graph["deltav2a.high.b"] == {"deltav2a.low.a"}


# ------------------------------------------------------------------ the real core/


def test_core_is_layered():
    problems = check_layers(import_graph())
    assert not problems, "\n".join(problems)


def test_core_keeps_few_top_level_modules():
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("layer", [name for name in LAYERS if name != FOUNDATION])
def test_every_declared_layer_is_a_package(layer):
    assert (CORE / layer / "__init__.py").is_file(), f"LAYERS names '{layer}' but core/{layer}/ is no package"


@pytest.mark.parametrize("argv", [["--help"], ["list-plugins", "--json"]])
def test_cli_start_up_imports_only_the_plugin_contract(argv):
    """`--help` and `list-plugins` load every plugin, so they import the top level, api/ and
    cli/ of core, and nothing above (the layer that CLI start-up pays for is api/)."""
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        from deltav2a.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main({argv!r})
            except SystemExit as e:
                assert e.code == 0, e.code
        print("\\n".join(sorted(m for m in sys.modules if m.startswith("deltav2a."))))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    layers = {layer_of(m) for m in res.stdout.split()}
    assert layers <= {FOUNDATION, "api", "cli"}, sorted(layers)
