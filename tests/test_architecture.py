"""The layering of docs/architecture.md holds: router reaches adapters only via the registry."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
