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
    """Run the loop; enter once its first pass is done and every lane's slots
    (``concurrency`` each) are free.

    The slots are only probed between passes: a reservation made while the loop's own
    claim holds the slots would mark the loop starved, and its release would start one
    more pass after the test began (a slow store, such as PostgreSQL on a busy machine,
    makes that window wide)."""
    passes = 0
    in_pass = False
    real_pass = d.one_pass

    async def counted_pass() -> float | None:
        nonlocal passes, in_pass
        in_pass = True
        try:
            return await real_pass()
        finally:
            in_pass = False
            passes += 1

    d.one_pass = counted_pass  # type: ignore[method-assign]
    task = asyncio.create_task(d.run())

    def idle() -> bool:
        if passes == 0 or in_pass:
            return False
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
