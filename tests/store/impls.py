"""The store implementations every store test runs against.

Adding an implementation (PostgreSQL) means adding its name to :data:`STORE_KINDS` and
a URL for a fresh, empty store to :func:`store_url_for`: the ``store`` fixtures of
``tests/store``, ``tests/incidents`` and ``tests/dispatch`` are parametrized by it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from router.store import Store, open_store

__all__ = ["STORE_KINDS", "started_store", "store_url_for"]

#: One parameter per implementation of router.store.base.Store.
STORE_KINDS: tuple[str, ...] = ("sqlite",)


def store_url_for(kind: str, db_file: Path) -> str:
    """The ``state_url`` of a fresh store of ``kind``; SQLite's database is ``db_file``."""
    if kind == "sqlite":
        return f"sqlite:///{db_file}"
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
