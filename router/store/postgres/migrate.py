"""Versioned schema migrations for the PostgreSQL store.

The files ``router/store/postgres/migrations/NNNN_name.sql`` are applied in order, all in
one transaction that first takes ``pg_advisory_xact_lock``: instances starting together
wait for the first one, then find the schema current and apply nothing. A database
written by a newer Tocsin (unknown version) is refused rather than silently misused.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

from psycopg import AsyncConnection

from router.errors import ConfigError
from router.store.postgres import queries as q

__all__ = ["available_migrations", "migrate"]

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, sql)`` of every shipped migration, in version order."""
    found: list[tuple[int, str, str]] = []
    for entry in files("router.store.postgres").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    return found


async def migrate(conn: AsyncConnection[Any]) -> tuple[int, list[str]]:
    """Apply every pending migration under the advisory lock.

    Returns the resulting version and the names of the migrations this call applied
    (empty when another instance did it first). ``conn`` must be in autocommit mode.
    """
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute(q.ADVISORY_XACT_LOCK, (q.MIGRATION_LOCK_KEY,))
        await conn.execute(q.CREATE_SCHEMA_VERSION)
        row = await (await conn.execute(q.SCHEMA_VERSION)).fetchone()
        version = int(row[0]) if row is not None else 0
        migrations = available_migrations()
        latest = migrations[-1][0] if migrations else 0
        if version > latest:
            raise ConfigError(
                f"the state database is at schema version {version}, newer than this Tocsin "
                f"knows ({latest}); upgrade Tocsin or use another state_url")
        for number, name, sql in migrations:
            if number <= version:
                continue
            await conn.execute(sql.encode("utf-8"))
            await conn.execute(q.RECORD_VERSION, (number, name))
            applied.append(name)
            version = number
    return version, applied
