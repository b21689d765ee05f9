"""Fixtures of the incident tests: a started store on a temporary file and the harness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.clock import FakeClock
from router.store import SqliteStore
from tests.incidents.harness import T_MON_10, Harness, load


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def h(tmp_path: Path, store: SqliteStore) -> Harness:
    return Harness(store, load(tmp_path), FakeClock(T_MON_10))


# The real-service fixtures of the integration suite (SMTP server, Tocsin, Alertmanager).
from tests.integration.conftest import (  # noqa: E402 - fixtures re-exported for pytest
    alertmanager_factory,
    smtp_server,
    tocsin_factory,
)

__all__ = ["alertmanager_factory", "h", "smtp_server", "store", "tocsin_factory"]
