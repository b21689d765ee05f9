"""Claims made outside the dispatcher's loop: slot reservations and in-memory hand-over."""

from __future__ import annotations

import asyncio

import pytest

from router.clock import FakeClock
from router.store import SqliteStore
from router.store.sqlite.lanes import LaneSlots
from tests.dispatch.channels import ScriptedChannel
from tests.dispatch.loop import count_claims, running
from tests.dispatch.test_dispatcher import dispatcher, eventually, plan
from tests.store.factories import T0


async def test_reserve_takes_every_free_slot_once(store: SqliteStore, clock: FakeClock) -> None:
    """A reservation takes all free slots of every lane; a second claimer gets none until
    it is released."""
    d = dispatcher(store, clock, {"email": ScriptedChannel()}, concurrency=4,
                   poll_interval_s=3600)
    assert d.reserve().total == 0  # not running: nothing may be claimed for it
    async with running(d, concurrency=4):
        slots = d.reserve()
        assert slots == LaneSlots({"email": 4}, other=4)
        assert d.reserve().total == 0
        d.offer([], slots)
        assert d.reserve() == slots
        d.offer([], slots)


async def test_offer_rejects_more_deliveries_than_slots(
    store: SqliteStore, clock: FakeClock
) -> None:
    """Offering more deliveries than the reservation allowed is a bug, refused loudly."""
    d = dispatcher(store, clock, {"email": ScriptedChannel()}, poll_interval_s=3600)
    async with running(d):
        await plan(store, "k1", "k2")
        slots = d.reserve()
        claimed = await store.claim_due(T0, 2, 60)
        with pytest.raises(ValueError, match="2 deliveries for 1 slots"):
            d.offer(claimed, LaneSlots({"email": 1}))
        d.offer(claimed, slots)


async def test_offered_deliveries_are_sent_without_a_claim_of_the_loop(
    store: SqliteStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliveries claimed elsewhere and offered are sent and recorded; the loop never claims
    them (a pass it runs while the slots were reserved finds nothing left to claim)."""
    channel = ScriptedChannel()
    d = dispatcher(store, clock, {"email": channel}, poll_interval_s=3600)
    async with running(d):
        claimed: list[int] = []
        claims = count_claims(store, monkeypatch, claimed)
        await plan(store, "k1", "k2")
        slots = d.reserve()
        d.offer(await store.claim_lanes(T0, slots, 60), slots)
        await eventually(lambda: len(channel.sent) == 2, "both offered deliveries sent")
        await eventually(lambda: _statuses(store, "sent"), "both recorded as sent")
        assert claims[0] == slots and claimed[0] == 2  # the test's own claim above
        assert set(claimed[1:]) <= {0}  # the loop's, if any, took nothing


async def test_loop_starved_by_a_reservation_claims_when_it_is_released(
    store: SqliteStore, clock: FakeClock
) -> None:
    """A wake-up that found every slot reserved is not lost: the release claims again."""
    channel = ScriptedChannel()
    d = dispatcher(store, clock, {"email": channel}, poll_interval_s=3600)
    async with running(d):
        slots = d.reserve()
        await plan(store, "k1")
        d.notify()
        for _ in range(20):
            await asyncio.sleep(0)  # the loop wakes, finds no free slot, waits again
        assert channel.calls == 0
        d.offer([], slots)
        await eventually(lambda: len(channel.sent) == 1, "delivery sent after the release")


async def test_full_offer_lets_the_loop_claim_the_rest(
    store: SqliteStore, clock: FakeClock
) -> None:
    """An offer that filled its reservation may have left due rows: the loop claims them."""
    channel = ScriptedChannel()
    d = dispatcher(store, clock, {"email": channel}, concurrency=2, poll_interval_s=3600)
    async with running(d, concurrency=2):
        await plan(store, "k1", "k2", "k3")
        slots = d.reserve()
        d.offer(await store.claim_lanes(T0, slots, 60), slots)
        await eventually(lambda: len(channel.sent) == 3, "the third delivery sent too")
    assert channel.max_in_flight <= 2


async def _statuses(store: SqliteStore, status: str) -> bool:
    return all(row.status == status for row in await store.list_deliveries())
