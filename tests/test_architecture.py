"""The layering of docs/architecture.md holds: no import cycle between modules or
packages, rules/ and incidents/ stay pure, http/ holds routes only, and router reaches
adapters only via the registry."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TOPS = ("router", "adapters")

#: Imports that still close a cycle or break a layer, each removed by another part of
#: the layout of docs/architecture.md (rules/ made pure: what templates see moves into
#: rules/, the authoring tools into authoring/, the one planner into incidents/). The
#: checks below ignore exactly these edges, and fail when one of them is gone, so that
#: this list only shrinks.
_PENDING: Mapping[tuple[str, str], str] = {
    ("router.rules.sms_policy", "router.rules.templates"): "rules/: module cycle",
    ("router.rules.time_intervals", "router.rules.schema"): "rules/: module cycle",
    ("router.rules.lifecycle", "router.rules.schema"): "rules/: module cycle",
    ("router.rules.testrun", "router.rules.cli"): "authoring/ and cli/",
    ("router.rules.cli", "router.store"): "cli/",
    ("router.rules.diff", "router.store.incidents"): "authoring/",
    ("router.rules.rehearsal", "router.store.sqlite"): "authoring/ (rule test rehearsal)",
    ("router.rules.rehearsal", "router.workers.intake"): "authoring/ (rule test rehearsal)",
    ("router.rules.rehearsal", "router.workers.scheduler"): "authoring/ (rule test rehearsal)",
    ("router.rules.explain", "router.incidents.flush"): "authoring/ (the one planner)",
    ("router.rules.loader", "adapters.registry"): "rules/ imports no adapters",
    ("router.rules.ruleset", "router.incidents.view"): "what templates see, in rules/",
    ("router.rules.sms_policy", "router.incidents.view"): "what templates see, in rules/",
    ("router.rules.template_fields", "router.incidents.view"): "what templates see",
    ("router.rules.templates", "router.incidents.view"): "what templates see, in rules/",
}
#: Modules of rules/ that still import asyncio, each leaving rules/ with another part of
#: the layout (the rule-test rehearsal runs the service's workers: it goes to authoring/).
_PENDING_ASYNC: Mapping[str, str] = {
    "router.rules.rehearsal": "authoring/",
}


@dataclass(frozen=True, slots=True)
class _Import:
    source: str  # importing module
    target: str  # imported module of router/ or adapters/
    where: str  # path:line


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for top in _TOPS for p in sorted((ROOT / top).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module of ours ``name`` is (or is inside), or None for a third-party one."""
    modules = _modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _imports() -> tuple[_Import, ...]:
    """Every import of our modules, at any level (module, function, TYPE_CHECKING)."""
    found: list[_Import] = []
    for module, path in _modules().items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parents, base] if base else parents)
                # ``from pkg import mod`` imports the module ``pkg.mod`` when there is one.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in _modules()
                           else base for alias in node.names]
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            for name in targets:
                target = _resolve(name)
                if target is not None and target != module:
                    found.append(_Import(module, target, where))
    return tuple(found)


def _unit(module: str) -> str:
    """The package a module belongs to for the package graph: ``router.http`` for
    everything under router/http/, the module itself for a top-level module."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle (a path back to its start) per strongly connected component."""
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        if source != target:
            graph.setdefault(source, set()).add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_in(graph, component) for component in components]


def _path_in(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """A cycle through the component's first member, found breadth-first."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        step: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & component):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    step.append(nxt)
        frontier = step
    raise AssertionError(f"no cycle in {sorted(component)}")


def _edges() -> list[_Import]:
    return [imp for imp in _imports() if (imp.source, imp.target) not in _PENDING]


def test_no_import_cycle_between_modules() -> None:
    """The import graph of router/ and adapters/ (function-level and TYPE_CHECKING
    imports included) has no cycle; a failure lists one cycle per knot."""
    assert _cycles((i.source, i.target) for i in _edges()) == []


def test_no_import_cycle_between_packages() -> None:
    """Packages (router.http, router.workers, router.store, ...; each top-level module on
    its own) import each other without a cycle."""
    units = {(_unit(i.source), _unit(i.target)) for i in _edges()}
    assert _cycles(units) == []


def test_pending_exceptions_still_exist() -> None:
    """Every edge the checks still tolerate exists: one that is gone leaves the list."""
    present = {(i.source, i.target) for i in _imports()}
    assert sorted(set(_PENDING) - present) == []


def test_cycle_finder_reports_a_cycle() -> None:
    """The cycle finder itself: a two-module knot is reported as a closed path."""
    assert _cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c", "a"]]


def test_rules_and_incidents_are_pure() -> None:
    """rules/ and incidents/ import no asyncio, store, http, workers or adapters."""
    forbidden = ("router.store", "router.http", "router.workers", "router.app", "adapters")
    offending = [f"{i.where}: {i.target}" for i in _edges()
                 if i.source.startswith(("router.rules", "router.incidents"))
                 and i.target.startswith(forbidden)]
    for module, path in _modules().items():
        if not module.startswith(("router.rules", "router.incidents")):
            continue
        if module in _PENDING_ASYNC:
            assert "asyncio" in path.read_text(encoding="utf-8"), f"{module}: not pending"
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offending += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                          for name in names if name.split(".")[0] in {"asyncio", "aiohttp"}]
    assert offending == []


def test_http_reaches_workers_only_through_app_keys() -> None:
    """router/http imports no worker module nor the composition root; the app keys of
    router/http/state.py name worker types for typing only."""
    offending = []
    for imp in _edges():
        if not imp.source.startswith("router.http"):
            continue
        if imp.target == "router.app" or (imp.target.startswith("router.workers")
                                          and imp.source != "router.http.state"):
            offending.append(f"{imp.where}: {imp.target}")
    state = ROOT / "router" / "http" / "state.py"
    tree = ast.parse(state.read_text(encoding="utf-8"))
    for node in tree.body:  # module level, outside ``if TYPE_CHECKING:``
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "router.workers"):
            offending.append(f"router/http/state.py:{node.lineno}: {node.module}")
    assert offending == []


def test_router_imports_no_concrete_adapter() -> None:
    """Every import of `adapters` inside router/ goes through adapters.registry."""
    offending = [
        f"{imp.where}: {imp.target}"
        for imp in _imports()
        if imp.source.startswith("router") and imp.target.startswith("adapters")
        and imp.target != "adapters.registry"
    ]
    assert offending == []
