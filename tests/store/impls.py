"""The store implementations every store test runs against.

Adding an implementation means adding its name to :data:`STORE_KINDS` and
a URL for a fresh, empty store to :func:`store_url_for`: the ``store`` fixtures of
``tests/store``, ``tests/incidents`` and ``tests/dispatch`` are parametrized by it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from router.store import Store, open_store, sqlite_url
from tests.services.postgres import fresh_database_url

__all__ = ["STORE_KINDS", "RawDb", "sqlite_only", "started_store", "store_url_for"]

#: One parameter per implementation of router.store.base.Store.
STORE_KINDS: tuple[str, ...] = ("sqlite", "postgres")

#: For a test of what only SQLite has (its file, its writer thread, its in-memory intake
#: cache, its single-process lease release): the ``store`` fixture of that test takes
#: the SQLite parameter only. Say why next to each use.
sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


def store_url_for(kind: str, db_file: Path) -> str:
    """The ``state_url`` of a fresh store of ``kind``; SQLite's database is ``db_file``,
    PostgreSQL's a new schema of the session's cluster (tests/services/postgres.py)."""
    if kind == "sqlite":
        return f"sqlite:///{db_file}"
    if kind == "postgres":  # a new schema on the session's throwaway cluster
        return fresh_database_url()
    raise ValueError(f"unknown store kind {kind!r}")


@asynccontextmanager
async def started_store(url: str) -> AsyncIterator[Store]:
    """The store of ``url``, started, closed on exit."""
    store = open_store(url)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


class RawDb:
    """Plain SQL on the database behind a store URL, for a test's setup and checks.

    Statements are written once with ``?`` placeholders and values both dialects take
    (ISO text for times, TRUE/FALSE for flags); each call is its own transaction.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql:", "postgres:"))

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                return [tuple(r) for r in conn.execute(sql.replace("?", "%s").encode(),
                                                       params).fetchall()]
        path, _ = sqlite_url(self.url)
        with sqlite3.connect(path) as conn:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement that returns no rows."""
        if self.postgres:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.replace("?", "%s").encode(), params)
            return
        path, _ = sqlite_url(self.url)
        with sqlite3.connect(path) as conn:
            conn.execute(sql, params)

    def count(self, sql: str) -> int:
        """The single number ``sql`` selects."""
        return int(self.rows(sql)[0][0])
