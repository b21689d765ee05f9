"""A flush claims its deliveries in its own transaction and hands them to the dispatcher."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.config import ServiceConfig
from router.http import ServiceState
from router.incidents.flush import plan_flush
from router.models import Delivery
from router.store import SqliteStore
from router.store.sqlite.incidents import FlushClaim
from router.store.sqlite.lanes import LaneSlots
from router.workers.dispatcher import Dispatcher
from router.workers.retry import RetryPolicy
from router.workers.scheduler import Scheduler
from tests.dispatch.channels import ScriptedChannel
from tests.dispatch.loop import count_claims, running
from tests.dispatch.test_dispatcher import eventually
from tests.incidents.harness import RULES, T_SUN_0030, Harness, load, make_alert
from tests.store.factories import make_delivery


def attach(h: Harness, channel: ScriptedChannel, *, concurrency: int = 8) -> Dispatcher:
    """Wire a dispatcher to the harness's scheduler as the service does."""
    d = Dispatcher(h.store, {"email": channel}, clock=h.clock,
                   policy=RetryPolicy(initial_s=1, max_s=30), concurrency=concurrency,
                   lease_s=60, poll_interval_s=3600, rng=random.Random(7))
    h.scheduler = Scheduler(h.store, lambda: h.rules, clock=h.clock, deadline_s=3600,
                            on_planned=d.notify, dispatcher=d)
    return d


async def test_flush_claims_and_sends_without_a_claim_transaction(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush's commit leases its deliveries; they are sent with no claim transaction."""
    channel = ScriptedChannel(gate=asyncio.Event())  # held: the sends come after the checks
    d = attach(h, channel)
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    async with running(d):
        claims = count_claims(h.store, monkeypatch)
        commits = h.store.commits
        h.clock.advance(30)
        assert await h.scheduler.flush_due() == 1
        # the claim of the due incident, then the flush with its deliveries' claim
        assert h.store.commits == commits + 2
        leased = await h.deliveries()
        assert [(x.status, x.attempts) for x in leased] == [("pending", 1)] * 2
        assert {x.next_attempt_at for x in leased} == {h.clock.now() + timedelta(seconds=60)}
        assert channel.gate is not None
        channel.gate.set()
        await eventually(lambda: len(channel.sent) == 2, "both emails sent")
        await eventually(_all_sent(h.store), "both recorded as sent")
        assert claims == []


async def test_held_delivery_is_not_claimed(h: Harness) -> None:
    """Quiet hours: the held notice stays pending and unleased; the other one is sent."""
    channel = ScriptedChannel()
    d = attach(h, channel)
    h.clock.set(T_SUN_0030)
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, audience="customers",
                               severity="warning"))
    async with running(d):
        h.clock.advance(30)
        await h.scheduler.flush_due()
        await eventually(lambda: len(channel.sent) == 1, "dave's email sent")
        await eventually(_sent(h, 1), "dave's email recorded as sent")
        rows = {x.contact_id: x for x in await h.deliveries()}
    assert (rows["dave"].status, rows["dave"].attempts) == ("sent", 1)
    carol = rows["carol"]
    assert (carol.status, carol.attempts) == ("pending", 0)
    assert carol.next_attempt_at == datetime.fromisoformat("2024-05-06T06:00:00+00:00")


async def test_flush_conflict_claims_nothing(h: Harness, store: SqliteStore) -> None:
    """A flush computed from a stale snapshot writes nothing and leases nothing."""
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    h.clock.advance(30)
    now = h.clock.now()
    (incident_id,) = await store.due_incidents(now, 10)
    snapshot = await store.load_incident(incident_id, now, lambda labels: [], None)
    assert snapshot is not None
    result = plan_flush(snapshot.incident, snapshot.alerts, snapshot.logs, snapshot.inhibited,
                        h.rules, now, storm_recent=snapshot.storm_recent)
    await store.commit_plan([], [make_delivery("other")], now=now, deadline_s=600)
    await h.receive(make_alert("DiskFull", starts_at=now, host="b"))  # version moves on
    claim = FlushClaim(slots=LaneSlots(other=8), lease_s=60, at=now)
    assert await store.commit_flush(snapshot, result, now=now, deadline_s=3600,
                                    claim=claim) is None
    assert [(x.idempotency_key, x.attempts) for x in await h.deliveries()] == [("other", 0)]


async def test_conflicting_flush_releases_its_slots(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a conflict the scheduler recomputes; its reservations are all given back."""
    channel = ScriptedChannel()
    d = attach(h, channel)
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    real = h.store.commit_flush
    conflicts: list[bool] = []

    async def first_conflicts(*args: object, **kwargs: object) -> list[Delivery] | None:
        if not conflicts:
            conflicts.append(True)
            await h.receive(make_alert("DiskFull", starts_at=h.clock.now(), host="b"))
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(h.store, "commit_flush", first_conflicts)
    async with running(d):
        h.clock.advance(30)
        await h.scheduler.flush_due()
        await eventually(lambda: len(channel.sent) == 2, "sent after the recomputed flush")
        await eventually(_all_sent(h.store), "both recorded as sent")
        slots: list[LaneSlots] = []

        def all_free() -> bool:  # the sends' tasks end just after their mark_sent
            slots.append(d.reserve())
            d.offer([], slots[-1])
            return slots[-1] == LaneSlots({"email": 8}, other=8)

        await eventually(all_free, "every slot given back")
    assert conflicts == [True]


async def test_concurrency_holds_with_the_loop_claiming_at_the_same_time(
    h: Harness, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's claim and a flush's claim together never lease more than ``concurrency``."""
    gate = asyncio.Event()
    channel = ScriptedChannel(gate=gate)
    d = attach(h, channel, concurrency=2)
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))  # 2 emails at the flush
    claim_started, go = asyncio.Event(), asyncio.Event()
    real = store.claim_lanes

    async def held_claim(now: datetime, slots: LaneSlots, lease_s: float) -> list[Delivery]:
        claim_started.set()
        await go.wait()
        return await real(now, slots, lease_s)

    async with running(d, concurrency=2):
        monkeypatch.setattr(store, "claim_lanes", held_claim)
        await store.commit_plan([], [make_delivery(k) for k in ("p1", "p2", "p3")],
                                now=h.clock.now(), deadline_s=600)
        d.notify()
        await claim_started.wait()  # the loop holds both slots while its claim runs
        h.clock.advance(30)
        assert await h.scheduler.flush_due() == 1
        assert all(x.attempts == 0 for x in await h.deliveries())  # the flush claimed none
        go.set()
        await eventually(lambda: channel.in_flight == 2, "two sends in flight")
        for _ in range(20):
            await asyncio.sleep(0)
        assert channel.in_flight == 2
        assert sum(x.attempts for x in await h.deliveries()) == 2
        gate.set()
        await eventually(lambda: len(channel.sent) == 5, "all five sent")
        await eventually(_all_sent(h.store), "all recorded as sent")
    assert channel.max_in_flight == 2
    assert all(x.attempts == 1 for x in await h.deliveries())


async def test_without_a_dispatcher_nothing_is_claimed(h: Harness) -> None:
    """The scheduler alone (no dispatcher, as with run_workers=False) leaves rows unleased."""
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    planned = await h.tick(30)
    assert [(x.status, x.attempts) for x in planned] == [("pending", 0)] * 2


async def test_service_hands_a_flush_to_the_dispatcher(
    tmp_path: Path, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired by create_app: a webhook alert (group_wait 0) is emailed with no claim of its own."""
    config = ServiceConfig.model_validate({
        "state_url": f"sqlite:///{tmp_path / 'x.db'}",
        "dispatch": {"poll_interval_s": 3600}})
    channel = ScriptedChannel()
    claims = count_claims(store, monkeypatch)
    app = create_app(config, rules=load(tmp_path, RULES.replace("group_wait: 30s",
                                                                "group_wait: 0s")),
                     store=store, channels={"email": channel}, state=ServiceState())
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        await eventually(lambda: claims, "the dispatcher's first claim at start")
        before = list(claims)
        posted = await client.post("/webhook/alertmanager",
                                   data=b'{"alerts": [{"labels": {"alertname": "A"}}]}',
                                   headers={"Content-Type": "application/json"})
        assert posted.status == 200
        await eventually(lambda: len(channel.sent) == 2, "both emails sent")
        await eventually(_all_sent(store), "both recorded as sent")
        assert claims == before
    finally:
        await client.close()


def _all_sent(store: SqliteStore) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        rows = await store.list_deliveries()
        return bool(rows) and all(x.status == "sent" for x in rows)
    return check


def _sent(h: Harness, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return sum(x.status == "sent" for x in await h.deliveries()) == count
    return check
