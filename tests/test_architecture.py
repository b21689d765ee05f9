"""The layering of docs/architecture.md holds.

- ``router`` reaches ``adapters`` only through ``adapters.registry``;
- no import cycle between modules, nor between packages (``router/rules/``,
  ``router/config/``, ``adapters/kafka/``, ... and the top-level modules, each one node);
- ``router/rules/`` and ``router/incidents/`` are pure: no asyncio, aiohttp, store, HTTP
  or adapters;
- ``router/http/`` holds routes only: it reaches no worker module nor the composition
  root (``router/http/state.py`` names worker types for typing only);
- one strict base and one YAML path for what a person writes.

Every import counts, lazy ones inside functions included (a lazy import that dodges a
cycle is still a cycle); only ``if TYPE_CHECKING:`` blocks are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("router", "adapters")




def _adapter_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                  for name in names if name == "adapters" or name.startswith("adapters.")]
    return found


def test_router_imports_no_concrete_adapter() -> None:
    """Every import of `adapters` inside router/ goes through adapters.registry."""
    offending = [
        line
        for path in sorted((ROOT / "router").rglob("*.py"))
        for line in _adapter_imports(path)
        if not line.endswith(": adapters.registry")
    ]
    assert offending == []


def _calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_the_strict_base_is_defined_once() -> None:
    """Only router/strict.py forbids unknown keys itself: every model a person writes
    (service config, rule files, rule tests) derives from router.strict.Strict."""
    offending = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in sorted((ROOT / "router").rglob("*.py"))
        if path != ROOT / "router" / "strict.py"
        for call in _calls(path)
        if any(kw.arg == "extra" and isinstance(kw.value, ast.Constant)
               and kw.value.value == "forbid" for kw in call.keywords)
    ]
    assert offending == []


def test_one_yaml_path_reads_files() -> None:
    """Files a person writes are parsed in router/yamlsrc.py only (one position and error
    path for the service config and the rule files)."""
    offending = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in sorted((ROOT / "router").rglob("*.py"))
        if path != ROOT / "router" / "yamlsrc.py"
        for call in _calls(path)
        if isinstance(call.func, ast.Attribute) and call.func.attr in ("compose", "compose_all")
        and isinstance(call.func.value, ast.Name) and call.func.value.id == "yaml"
    ]
    assert offending == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(path): path for top in PACKAGES
                            for path in sorted((ROOT / top).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def _imported(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports (a ``from pkg import sub`` names ``pkg.sub``)."""
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            here = here[:len(here) - node.level + 1]
            base = ".".join([*here, *([node.module] if node.module else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            found.add(sub if sub in MODULES else base)
    return found


GRAPH: dict[str, set[str]] = {
    name: {dep for dep in _imported(name, path) if dep in MODULES and dep != name}
    for name, path in MODULES.items()
}


def _cycles(graph: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """The node of ``module`` in the package graph: its sub-package of router/ or
    adapters/ (``router.rules``, ``adapters.kafka``), else the module itself."""
    parts = module.split(".")
    if len(parts) >= 2:
        return ".".join(parts[:2])
    return module


def test_no_import_cycle_between_modules() -> None:
    """No module imports, even lazily, a module that imports it back (directly or not)."""
    assert _cycles(GRAPH) == set()


def test_no_import_cycle_between_packages() -> None:
    """Packages form layers: no package imports one that imports it back."""
    graph: dict[str, set[str]] = {}
    for name, deps in GRAPH.items():
        for dep in deps:
            if _package(name) != _package(dep):
                graph.setdefault(_package(name), set()).add(_package(dep))
    assert _cycles(graph) == set()


def test_the_cycle_check_sees_lazy_imports() -> None:
    """The graph includes an import made inside a function (router.cli.serve imports
    router.config lazily), so a cycle dodged by a lazy import is still found."""
    assert "router.config" in GRAPH["router.cli.serve"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {
        frozenset({"a", "b", "c"})}


def test_rules_and_incidents_are_pure() -> None:
    """router/rules/ and router/incidents/ import no asyncio, aiohttp, store, HTTP layer
    or adapter: rule evaluation and incident logic are synchronous and do no I/O."""
    forbidden = ("asyncio", "aiohttp", "router.store", "router.http", "adapters")
    offending = sorted(
        f"{name} imports {dep}"
        for name, path in MODULES.items()
        if name.startswith(("router.rules.", "router.incidents."))
        for dep in _imported(name, path)
        if any(dep == bad or dep.startswith(bad + ".") for bad in forbidden)
    )
    assert offending == []


def test_http_reaches_workers_only_through_app_keys() -> None:
    """router/http imports no worker module nor the composition root (router/app.py); the
    app keys of router/http/state.py name worker types for typing only."""
    offending = sorted(
        f"{name} imports {dep}"
        for name, path in MODULES.items()
        if name == "router.http" or name.startswith("router.http.")
        for dep in _imported(name, path)
        if dep == "router.app" or dep == "router.workers" or dep.startswith("router.workers.")
    )
    assert offending == []
