"""Versioned schema migrations for the SQLite store.

Migrations are the files ``router/store/sqlite/migrations/NNNN_name.sql``, applied in order,
each in its own transaction together with its row in ``schema_version``. Every shipped
migration not recorded there is applied, lowest first, even below the highest one
recorded (numbers reserved by work merged later, such as 0010 and 0011 under 0012, are
applied when they arrive). A database written by a newer Tocsin (unknown version) is
refused rather than silently misused.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from importlib.resources import files

from router.errors import ConfigError

__all__ = ["applied_versions", "available_migrations", "current_version", "migrate"]

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` of every shipped migration, in version order."""
    found: list[tuple[int, str, str]] = []
    for entry in files("router.store.sqlite").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """The migrations recorded in the database (none when empty)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_version")}


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version of the database: its highest migration (0 when empty)."""
    return max(applied_versions(conn), default=0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration; return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    applied = applied_versions(conn)
    version = max(applied, default=0)
    migrations = available_migrations()
    latest = migrations[-1][0] if migrations else 0
    if version > latest:
        raise ConfigError(
            f"the state database is at schema version {version}, newer than this Tocsin "
            f"knows ({latest}); upgrade Tocsin or use another state_url"
        )
    for number, name, sql in migrations:
        if number in applied:
            continue
        applied_at = datetime.now(UTC).isoformat(timespec="microseconds")
        script = (
            "BEGIN IMMEDIATE;\n"
            f"{sql}\n;\n"
            f"INSERT INTO schema_version (version, name, applied_at) "
            f"VALUES ({number}, '{name}', '{applied_at}');\n"
            "COMMIT;\n"
        )
        try:
            conn.executescript(script)
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.add(number)
    return max(applied, default=0)
