"""Fixtures of the incident tests: a started store (each implementation) and the harness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.clock import FakeClock
from router.store import Store
from tests.incidents.harness import T_MON_10, Harness, load
from tests.store.impls import STORE_KINDS, started_store, store_url_for


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A started store (one per implementation, tests/store/impls.py) on a temporary folder."""
    async with started_store(store_url_for(str(request.param), tmp_path / "tocsin.db")) as s:
        yield s


@pytest.fixture
async def h(tmp_path: Path, store: Store) -> Harness:
    return Harness(store, load(tmp_path), FakeClock(T_MON_10))


# The real-service fixtures of the integration suite (SMTP server, Tocsin, Alertmanager).
from tests.integration.conftest import (  # noqa: E402 - fixtures re-exported for pytest
    alertmanager_factory,
    smtp_server,
    tocsin_factory,
)

__all__ = ["alertmanager_factory", "h", "smtp_server", "store", "tocsin_factory"]
