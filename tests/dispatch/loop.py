"""Test helpers around a running dispatcher: enter once it is idle, spy on its claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from router.models import Delivery
from router.store import SqliteStore
from router.store.sqlite.lanes import LaneSlots
from router.workers.dispatcher import Dispatcher
from tests.dispatch.test_dispatcher import eventually


@asynccontextmanager
async def running(d: Dispatcher, concurrency: int = 8) -> AsyncIterator[Dispatcher]:
    """Run the loop; enter once its first claim is done and every lane's slots
    (``concurrency`` each) are free."""
    task = asyncio.create_task(d.run())

    def idle() -> bool:
        slots = d.reserve()
        d.offer([], slots)
        return slots.other == concurrency and all(
            free == concurrency for free in slots.per_channel.values())

    await eventually(idle, "dispatcher idle")
    try:
        yield d
    finally:
        await d.stop()
        await task


def count_claims(store: SqliteStore, monkeypatch: pytest.MonkeyPatch,
                 taken: list[int] | None = None) -> list[LaneSlots]:
    """Spy on the dispatcher's own claim transactions (``claim_lanes``): one entry (its
    slots per lane) per call; ``taken`` gets how many deliveries each call leased."""
    calls: list[LaneSlots] = []
    real = store.claim_lanes

    async def spy(now: datetime, slots: LaneSlots, lease_s: float) -> list[Delivery]:
        calls.append(slots)
        leased = await real(now, slots, lease_s)
        if taken is not None:
            taken.append(len(leased))
        return leased

    monkeypatch.setattr(store, "claim_lanes", spy)
    return calls
