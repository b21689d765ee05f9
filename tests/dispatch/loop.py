"""Test helpers around a running dispatcher: enter once it is idle, spy on its claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from router.dispatch import Dispatcher
from router.models import Delivery
from router.store import SqliteStore
from tests.dispatch.test_dispatcher import eventually


@asynccontextmanager
async def running(d: Dispatcher, concurrency: int = 8) -> AsyncIterator[Dispatcher]:
    """Run the loop; enter once its first claim is done and every slot is free."""
    task = asyncio.create_task(d.run())

    def idle() -> bool:
        slots = d.reserve()
        d.offer([], slots)
        return slots == concurrency

    await eventually(idle, "dispatcher idle")
    try:
        yield d
    finally:
        await d.stop()
        await task


def count_claims(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy on the dispatcher's own claim transactions (``claim_due``): one entry (its
    limit) per call."""
    calls: list[int] = []
    real = store.claim_due

    async def spy(now: datetime, limit: int, lease_s: float) -> list[Delivery]:
        calls.append(limit)
        return await real(now, limit, lease_s)

    monkeypatch.setattr(store, "claim_due", spy)
    return calls
