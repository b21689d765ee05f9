"""Per-channel lanes: own claim, slots, rate limit and circuit breaker; severity order."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from router.clock import FakeClock
from router.errors import DeliveryError
from router.metrics import REGISTRY
from router.models import NewDelivery
from router.store import SqliteStore
from router.store.sqlite.lanes import LaneSlots, claim_sql, severity_rank
from router.workers.breaker import CircuitBreaker
from router.workers.dispatcher import Dispatcher, LaneSettings
from router.workers.retry import RetryPolicy
from tests.dispatch.channels import ScriptedChannel
from tests.dispatch.test_dispatcher import eventually
from tests.store.factories import T0, make_delivery


def delivery(key: str, *, channel: str = "email", severity: str = "critical") -> NewDelivery:
    recipient = "+33612345678" if channel == "sms" else "ops@example.com"
    return replace(make_delivery(key, channel=channel, recipient=recipient), severity=severity)


async def plan_at(store: SqliteStore, deliveries: list[NewDelivery], at: float = 0) -> None:
    """Plan ``deliveries`` due at ``T0 + at`` seconds (a later ``at``: due later)."""
    await store.commit_plan([], deliveries, now=T0 + timedelta(seconds=at), deadline_s=3600)


def circuit_open(channel: str) -> float | None:
    return REGISTRY.get_sample_value("tocsin_channel_circuit_open", {"channel": channel})


# -- the claim ------------------------------------------------------------------------


async def test_claim_takes_each_lanes_slots_whatever_the_other_backlog(
    store: SqliteStore,
) -> None:
    """An older e-mail backlog does not use up the SMS lane's claim (old claim: oldest 4
    e-mails, no SMS)."""
    await plan_at(store, [delivery(f"e{i}") for i in range(10)])
    await plan_at(store, [delivery("s1", channel="sms")], at=1)
    claimed = await store.claim_lanes(T0 + timedelta(seconds=5),
                                      LaneSlots({"email": 2, "sms": 2}), 60)
    assert sorted(d.channel for d in claimed) == ["email", "email", "sms"]
    assert LaneSlots({"email": 2, "sms": 2}).filled(claimed)  # e-mail took all its slots
    assert not LaneSlots({"email": 3, "sms": 2}).filled(claimed[:1] + claimed[2:])


async def test_claim_other_slots_take_only_channels_without_a_lane(store: SqliteStore) -> None:
    """``other`` slots take channels that have no lane (sorting before, between or after
    the lanes' names), most severe first, not a lane's backlog."""
    await plan_at(store, [delivery("e1"), delivery("p1", channel="push"),
                          delivery("f1", channel="fax", severity="info"),
                          delivery("a1", channel="aaa", severity="warning"),
                          delivery("z1", channel="zzz")])
    claimed = await store.claim_lanes(T0, LaneSlots({"email": 0, "push": 0, "sms": 0},
                                                    other=2), 60)
    assert sorted(d.idempotency_key for d in claimed) == ["a1", "z1"]
    claimed = await store.claim_lanes(T0, LaneSlots({"email": 0, "push": 0}, other=5), 60)
    assert [d.idempotency_key for d in claimed] == ["f1"]


async def test_claim_reads_only_each_lanes_index_range(tmp_path: Path) -> None:
    """The claim's plan searches the lane index per channel (and between the channels
    for ``other``): no scan, so one lane's backlog is never read by another's claim."""
    path = tmp_path / "plan.db"
    s = SqliteStore(str(path))
    await s.start()
    await s.close()
    statement = claim_sql(LaneSlots({"email": 4, "sms": 2}, other=3), "t0", "t1")
    assert statement is not None
    sql, params = statement
    with closing(sqlite3.connect(path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    reads = [step for step in plan if step.startswith(("SEARCH", "SCAN deliveries"))]
    # (deliveries_first_pending: the probe that keeps one recipient's phases in order.)
    assert reads and all("deliveries_lane_due" in step or "PRIMARY KEY" in step
                         or "deliveries_first_pending" in step for step in reads), plan


async def test_claim_within_a_lane_is_critical_then_warning_then_info(
    store: SqliteStore,
) -> None:
    """Reproducer (c): the oldest due is info, yet critical goes first, then warning, then
    info; equal severities by due time (old claim: by due time only)."""
    await plan_at(store, [delivery("info", severity="info")])
    await plan_at(store, [delivery("warning", severity="warning")], at=1)
    await plan_at(store, [delivery("critical-late", severity="critical")], at=3)
    await plan_at(store, [delivery("critical", severity="critical")], at=2)
    now = T0 + timedelta(seconds=10)
    order = [(await store.claim_lanes(now, LaneSlots({"email": 1}), 60))[0].idempotency_key
             for _ in range(4)]
    assert order == ["critical", "critical-late", "warning", "info"]
    assert severity_rank("page") == severity_rank("warning")  # unknown: ranks as warning


async def test_dispatcher_sends_a_lane_in_severity_order(store: SqliteStore) -> None:
    """Reproducer (c) through the dispatcher: one slot, sends go critical, warning, info."""
    await plan_at(store, [delivery("i", severity="info")])
    await plan_at(store, [delivery("w", severity="warning")], at=1)
    await plan_at(store, [delivery("c", severity="critical")], at=2)
    channel = ScriptedChannel()
    d = Dispatcher(store, {"email": channel}, clock=FakeClock(T0 + timedelta(seconds=5)),
                   policy=RetryPolicy(), concurrency=1)
    for _ in range(3):
        await d.dispatch_once()
    assert [m.idempotency_key for m in channel.sent] == ["c", "w", "i"]


# -- slots and rate limits --------------------------------------------------------------


async def test_a_hung_lane_does_not_hold_another_lanes_slots(store: SqliteStore) -> None:
    """Every e-mail slot hangs; an SMS planned after 20 e-mails is still sent at once (old
    code: the 4 shared slots hang on e-mail and the SMS waits behind them)."""
    email = ScriptedChannel(gate=asyncio.Event())  # never opened: e-mail sends hang
    sms = ScriptedChannel(name="sms")
    await plan_at(store, [delivery(f"e{i}", severity="info") for i in range(20)])
    await plan_at(store, [delivery("s", channel="sms")], at=1)
    d = Dispatcher(store, {"email": email, "sms": sms}, clock=FakeClock(T0 + timedelta(seconds=5)),
                   policy=RetryPolicy(), concurrency=4, poll_interval_s=0.01,
                   drain_timeout_s=0.1)
    task = asyncio.create_task(d.run())
    try:
        await eventually(lambda: len(sms.sent) == 1, "the SMS sent")
        assert email.max_in_flight == 4  # the e-mail lane's own slots, all hung
        assert email.sent == []
    finally:
        await d.stop()
        await task


async def test_email_goes_at_its_own_rate_not_the_sms_rate(store: SqliteStore) -> None:
    """Reproducer (b): with SMS at 1/s and e-mail at 200/s, 20 e-mails planned after 20
    SMS are all sent while at most a few SMS are (old code: e-mail waits for slots held
    by SMS waiting for their tokens, so it goes at about the SMS rate: ~20 s)."""
    email, sms = ScriptedChannel(), ScriptedChannel(name="sms")
    await plan_at(store, [delivery(f"s{i}", channel="sms") for i in range(20)])
    await plan_at(store, [delivery(f"e{i}") for i in range(20)], at=1)
    d = Dispatcher(store, {"email": email, "sms": sms}, clock=FakeClock(T0 + timedelta(seconds=5)),
                   policy=RetryPolicy(), concurrency=4, poll_interval_s=0.01,
                   drain_timeout_s=0.1, rate_limits={"sms": 1.0, "email": 200.0})
    task = asyncio.create_task(d.run())
    try:
        await eventually(lambda: len(email.sent) == 20, "all 20 e-mails sent")
        # 1 SMS at once, then one per second: the e-mails took well under 3 SMS tokens.
        assert len(sms.sent) <= 3
        assert sms.max_in_flight <= 4
    finally:
        await d.stop()
        await task


async def test_lane_settings_override_the_defaults(store: SqliteStore) -> None:
    """``lanes`` gives a channel its own slots; the other lanes keep the default."""
    gate = asyncio.Event()
    email, sms = ScriptedChannel(gate=gate), ScriptedChannel(name="sms", gate=gate)
    d = Dispatcher(store, {"email": email, "sms": sms}, clock=FakeClock(T0),
                   policy=RetryPolicy(), concurrency=3, poll_interval_s=3600,
                   lanes={"sms": LaneSettings(concurrency=1)})
    task = asyncio.create_task(d.run())
    try:
        await eventually(_idle(d), "first claim done")
        slots = d.reserve()
        d.offer([], slots)
        assert slots == LaneSlots({"email": 3, "sms": 1}, other=3)
    finally:
        gate.set()
        await d.stop()
        await task


def _idle(d: Dispatcher) -> Callable[[], bool]:
    def check() -> bool:
        slots = d.reserve()
        d.offer([], slots)
        return slots.total > 0
    return check


# -- circuit breaker -----------------------------------------------------------------


def _state(breaker: CircuitBreaker) -> str:
    return breaker.state  # read afresh (the clock moved), not narrowed by an assert


def _reopens_at(breaker: CircuitBreaker) -> datetime | None:
    return breaker.reopens_at


def test_breaker_opens_half_opens_and_closes() -> None:
    """Reproducer (d): N failures in a row open it; after the cool-down one probe: a
    failed probe opens it again, a successful one closes it (FakeClock, no sleeping)."""
    clock = FakeClock(T0)
    breaker = CircuitBreaker("bk-test", failures=3, cooldown_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # the count is of failures in a row
    breaker.record_failure()
    breaker.record_failure()
    assert (breaker.state, circuit_open("bk-test")) == ("closed", 0)
    breaker.record_failure()
    assert (breaker.state, circuit_open("bk-test")) == ("open", 1)
    assert breaker.reopens_at == T0 + timedelta(seconds=30)
    clock.advance(29)
    assert breaker.state == "open"
    clock.advance(1)
    assert _state(breaker) == "half_open"
    assert _reopens_at(breaker) is None
    breaker.record_failure()  # the probe failed: a new cool-down
    assert breaker.state == "open"
    assert breaker.reopens_at == clock.now() + timedelta(seconds=30)
    clock.advance(30)
    breaker.record_success()
    assert (breaker.state, circuit_open("bk-test")) == ("closed", 0)
    assert REGISTRY.get_sample_value("tocsin_channel_circuit_opened_total",
                                     {"channel": "bk-test"}) == 2


async def test_open_breaker_leaves_its_lane_pending_and_other_lanes_go(
    store: SqliteStore,
) -> None:
    """Reproducer (d) in the dispatcher: after 2 retryable failures the e-mail lane claims
    nothing (rows pending, no attempt counted) while SMS is sent; after the cool-down one
    probe goes, and its success closes the breaker."""
    clock = FakeClock(T0)
    flaky = DeliveryError("421 try later", retryable=True)
    email = ScriptedChannel(script=[flaky, flaky, flaky])
    sms = ScriptedChannel(name="sms")
    await plan_at(store, [delivery(f"e{i}") for i in range(4)])
    d = Dispatcher(store, {"email": email, "sms": sms}, clock=clock,
                   policy=RetryPolicy(initial_s=1, max_s=1), rng=random.Random(1),
                   lanes={"email": LaneSettings(concurrency=1, breaker_failures=2,
                                                breaker_cooldown_s=60)})
    assert await d.dispatch_once() == 1
    assert await d.dispatch_once() == 1
    assert d.breaker_state("email") == "open"
    assert circuit_open("email") == 1
    await plan_at(store, [delivery("s1", channel="sms")])
    clock.advance(5)  # the two retries are due again: still not attempted
    assert await d.dispatch_once() == 1
    assert [m.idempotency_key for m in sms.sent] == ["s1"]
    assert email.calls == 2
    rows = {r.idempotency_key: r for r in await store.list_deliveries()}
    assert [rows[f"e{i}"].attempts for i in range(4)] == [1, 1, 0, 0]
    assert all(rows[f"e{i}"].status == "pending" for i in range(4))

    clock.advance(60)  # half-open: one probe, which fails: open again
    assert d.breaker_state("email") == "half_open"
    assert await d.dispatch_once() == 1
    assert d.breaker_state("email") == "open"
    assert await d.dispatch_once() == 0
    clock.advance(60)  # the next probe succeeds: closed, the lane goes on
    assert await d.dispatch_once() == 1
    assert d.breaker_state("email") == "closed"
    assert circuit_open("email") == 0
    for _ in range(3):
        await d.dispatch_once()
    assert {r.status for r in await store.list_deliveries()} == {"sent"}
    assert email.calls == 3 + 4


async def test_rows_claimed_before_the_breaker_opened_are_handed_back_unattempted(
    store: SqliteStore,
) -> None:
    """A row claimed while the lane was closed, not yet sent when the breaker opens
    (waiting for its rate token), goes back pending with its attempt uncounted."""
    clock = FakeClock(T0)
    gate = asyncio.Event()
    email = ScriptedChannel(script=[DeliveryError("timeout", retryable=True)], gate=gate)
    await plan_at(store, [delivery("first"), delivery("second", severity="warning")])
    d = Dispatcher(store, {"email": email}, clock=clock, policy=RetryPolicy(),
                   lanes={"email": LaneSettings(concurrency=2, rate_per_s=2,
                                                breaker_failures=1)})
    run = asyncio.create_task(d.dispatch_once())
    await eventually(lambda: email.calls == 1, "the first send started")
    gate.set()  # it fails: the breaker opens while "second" waits for its token
    assert await run == 2
    second = next(r for r in await store.list_deliveries() if r.idempotency_key == "second")
    assert (second.status, second.attempts, email.calls) == ("pending", 0, 1)
    assert second.next_attempt_at == T0 + timedelta(seconds=30)  # due at the probe


async def test_breaker_can_be_turned_off(store: SqliteStore) -> None:
    """``breaker_failures: 0``: every failure is retried, the lane never pauses."""
    clock = FakeClock(T0)
    flaky = DeliveryError("421", retryable=True)
    email = ScriptedChannel(script=[flaky] * 6)
    await plan_at(store, [delivery(f"e{i}") for i in range(6)])
    d = Dispatcher(store, {"email": email}, clock=clock, policy=RetryPolicy(),
                   breaker_failures=0)
    assert await d.dispatch_once() == 6
    assert d.breaker_state("email") == "closed"


async def test_a_claim_that_found_a_lane_full_is_followed_up_when_a_slot_frees(
    store: SqliteStore,
) -> None:
    """A flush's claim got no slot of the full e-mail lane (and claimed the free SMS
    lane short): the e-mail it planned is claimed as soon as the lane's send ends, with
    no poll (poll_interval 1 h) and no notify."""
    gate = asyncio.Event()
    email, sms = ScriptedChannel(gate=gate), ScriptedChannel(name="sms")
    d = Dispatcher(store, {"email": email, "sms": sms}, clock=FakeClock(T0),
                   policy=RetryPolicy(), concurrency=1, poll_interval_s=3600)
    task = asyncio.create_task(d.run())
    try:
        await eventually(_idle(d), "first claim done")
        await plan_at(store, [delivery("first")])
        slots = d.reserve()
        d.offer(await store.claim_lanes(T0, slots, 60), slots)
        await eventually(lambda: email.in_flight == 1, "the first e-mail is sending")
        await plan_at(store, [delivery("second")])  # as a flush: the lane is full

        def sms_free() -> bool:  # the loop may be finishing a pass (a slower store)
            free = d.reserve()
            d.offer([], free)
            return free.per_channel.get("sms") == 1

        await eventually(sms_free, "the loop's own pass over")
        slots = d.reserve()
        assert slots.per_channel == {"email": 0, "sms": 1}
        claimed = await store.claim_lanes(T0, slots, 60)
        d.offer(claimed, slots)
        assert claimed == [] and not slots.filled(claimed)  # the scheduler won't notify
        gate.set()
        await eventually(lambda: [m.idempotency_key for m in email.sent] == ["first", "second"],
                         "the second e-mail sent once the first is done")
    finally:
        gate.set()
        await d.stop()
        await task
