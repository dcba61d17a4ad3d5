"""The import rules of docs/architecture.md, checked by reading every import statement of the
source (imports inside functions included), never by importing the modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("foundation", frozenset({"__init__", "errors", "_validate", "conventions", "image_codec",
                              "types", "config", "fixtures", "processes",
                              "atomic"})),
    ("geometry and ops", frozenset({"geometry", "ops"})),
    ("sources and alignment", frozenset({"data", "align", "rosmsg"})),
    ("stages", frozenset({"models", "tracking", "eval", "viz"})),
    ("deployment", frozenset({"export"})),
    ("pipeline", frozenset({"pipeline", "explain"})),
    ("log replay", frozenset({"replay"})),
    ("training", frozenset({"train"})),
    ("commands", frozenset({"commands"})),
    ("entry point", frozenset({"cli"})),
)
"""Bottom to top. A unit (a top-level module or subpackage of ``perception``) imports only
from units of lower layers, and from its own unit. The foundation's leaf modules may import
each other (the circle test keeps them acyclic)."""

ROS_PREFIXES = ("ros_nodes", "rclpy", "rosidl", "builtin_interfaces")
ROS_SUFFIX = "_msgs"


def _module_names(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of everything ``module`` imports, anywhere in its source."""
    names = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            # ``from pkg import name``: the submodule pkg.name when it is one, else pkg (the
            # caller resolves a name to its longest module).
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph(package: str) -> dict[str, set[str]]:
    """module -> the project modules it imports (a name resolves to its longest module)."""
    modules = _module_names(package)
    graph = {}
    for module, path in modules.items():
        deps = set()
        for name in _imports(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.mark.parametrize("package", ["perception", "ros_nodes"])
def test_no_import_circles(package):
    assert _cycles(_graph(package)) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_models_never_import_train():
    bad = {m: sorted(d for d in deps if d.startswith("perception.train"))
           for m, deps in _graph("perception").items() if m.startswith("perception.models")}
    assert {m: d for m, d in bad.items() if d} == {}


def test_perception_never_imports_ros():
    modules = _module_names("perception")
    bad = {}
    for module, path in modules.items():
        ros = sorted(n for n in _imports(module, path)
                     if n.split(".")[0].startswith(ROS_PREFIXES)
                     or n.split(".")[0].endswith(ROS_SUFFIX))
        if ros:
            bad[module] = ros
    assert bad == {}


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _module_names("perception")}
    placed = set().union(*(members for _, members in LAYERS))
    assert units <= placed, f"place these in LAYERS (and docs/architecture.md): " \
                            f"{sorted(units - placed)}"


def test_layers_import_only_downwards():
    layer_of = {unit: i for i, (_, members) in enumerate(LAYERS) for unit in members}
    bad = []
    for module, deps in _graph("perception").items():
        here = _unit(module)
        for dep in deps:
            there = _unit(dep)
            same_foundation = layer_of[here] == layer_of[there] == 0
            if there != here and layer_of[there] >= layer_of[here] and not same_foundation:
                bad.append(f"{module} ({LAYERS[layer_of[here]][0]}) imports {dep} "
                           f"({LAYERS[layer_of[there]][0]})")
    assert bad == []
