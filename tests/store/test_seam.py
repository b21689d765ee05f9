"""The store is a seam: SQL only in the store implementations (router/store/sqlite,
router/store/postgres), the contract free of any driver."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: SQL as Tocsin writes it: keywords in capitals (prose such as " with sample data" is not).
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|ALTER|DROP|WITH)\s")


def _sql_literals(path: Path) -> list[str]:
    """The string constants of ``path`` that read as SQL statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and _SQL.match(node.value)]


def test_no_sql_outside_the_store_implementations() -> None:
    """Every SQL statement of router/ and adapters/ is under router/store/sqlite/ or
    router/store/postgres/ (whose SQL is all in queries.py)."""
    found = {}
    for folder in ("router", "adapters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("router/store/sqlite/") or rel == "router/store/postgres/queries.py":
                continue
            if literals := _sql_literals(path):
                found[rel] = literals
    assert found == {}


def test_the_contract_knows_nothing_of_the_drivers() -> None:
    """router/store/base.py imports no database driver and holds no SQL."""
    path = ROOT / "router" / "store" / "base.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert "sqlite3" not in imported
    assert "psycopg" not in imported
    assert _sql_literals(path) == []


#: Modules outside router/store/sqlite/ that may import sqlite3, each with its reason.
SQLITE_IMPORT_ALLOWED: dict[str, str] = {}


def test_no_module_outside_the_sqlite_store_imports_sqlite3() -> None:
    """Reproducer: the intake processor and the CLI caught sqlite3 errors; the driver is
    now imported (even lazily) only under router/store/sqlite/, which raises StoreError."""
    found = []
    for folder in ("router", "adapters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("router/store/sqlite/") or rel in SQLITE_IMPORT_ALLOWED:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            names |= {node.module or "" for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom)}
            if any(name.split(".")[0] == "sqlite3" for name in names):
                found.append(rel)
    assert found == []


#: The PostgreSQL driver and its pool: only router/store/postgres/ imports them.
_PSYCOPG = ("psycopg", "psycopg_pool")


def test_no_module_outside_the_postgres_store_imports_psycopg() -> None:
    """psycopg (and psycopg_pool) are imported only under router/store/postgres/, which
    translates every driver error into the store's own (StoreUnavailable, StoreError)."""
    found = []
    for folder in ("router", "adapters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("router/store/postgres/"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
            names |= {node.module or "" for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom)}
            if any(name.split(".")[0] in _PSYCOPG for name in names):
                found.append(rel)
    assert found == []
