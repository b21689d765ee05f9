"""A started store (each implementation) and a fake clock for dispatcher tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.clock import FakeClock
from router.store import Store
from tests.store.factories import T0
from tests.store.impls import STORE_KINDS, started_store, store_url_for


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A started store (one per implementation, tests/store/impls.py) for dispatcher tests."""
    async with started_store(store_url_for(str(request.param), tmp_path / "tocsin.db")) as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)
