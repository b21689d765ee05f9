"""The store implementations every store test runs against.

Adding an implementation means adding its name to :data:`STORE_KINDS` and
a URL for a fresh, empty store to :func:`store_url_for`: the ``store`` fixtures of
``tests/store``, ``tests/incidents`` and ``tests/dispatch`` are parametrized by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from router.store import Store, open_store
from tests.services.postgres import fresh_database_url

__all__ = ["STORE_KINDS", "sqlite_only", "sqlite_only_url", "started_store", "store_url_for"]

#: One parameter per implementation of router.store.base.Store.
STORE_KINDS: tuple[str, ...] = ("sqlite", "postgres")

#: For a test of what only SQLite has (its file, its writer thread, its in-memory intake
#: cache, its single-process lease release): the ``store`` / ``store_url`` fixtures of
#: that test take the SQLite parameter only. Say why next to each use.
sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)
sqlite_only_url = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def store_url_for(kind: str, db_file: Path) -> str:
    """The ``state_url`` of a fresh store of ``kind``; SQLite's database is ``db_file``,
    PostgreSQL's a new database of the session's cluster (tests/services/postgres.py)."""
    if kind == "sqlite":
        return f"sqlite:///{db_file}"
    if kind == "postgres":  # a new database on the session's throwaway cluster
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
