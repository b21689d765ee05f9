"""The ``store`` fixture: one started store per implementation (tests/store/impls.py).

``store_url`` is the state URL of a fresh store of each kind, for the tests that close
and reopen it; ``sqlite_store`` is the SQLite store itself, for the tests of what only
SQLite has (group commit counters, its database file, its writer thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.store import SqliteStore, Store
from tests.store.impls import STORE_KINDS, started_store, store_url_for


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The state URL of a fresh store, one per implementation."""
    return store_url_for(str(request.param), tmp_path / "state" / "tocsin.db")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """A started store of each implementation, closed after the test."""
    async with started_store(store_url) as s:
        yield s


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """The SQLite store on ``tmp_path/state/tocsin.db`` (implementation-specific tests)."""
    s = SqliteStore(str(tmp_path / "state" / "tocsin.db"))
    await s.start()
    yield s
    await s.close()
