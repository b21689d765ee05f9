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
