"""Delivery semantics in the dispatcher and store: dead letters, fallback, replay, rate limits."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from router.clock import FakeClock
from router.errors import DeliveryError
from router.metrics import DEAD_LETTERS, FALLBACKS_PLANNED, SMS_SEGMENTS
from router.models import NewDelivery, Receipt, RenderedMessage
from router.store import SqliteStore
from router.workers.dispatcher import Dispatcher
from router.workers.ratelimit import TokenBucket
from router.workers.retry import RetryPolicy
from tests.dispatch.channels import ScriptedChannel
from tests.store.factories import T0, make_delivery


def sms_with_email_fallback(key: str = "sms-1") -> NewDelivery:
    primary = make_delivery(key, channel="sms", recipient="+33612345678")
    fallback = replace(make_delivery(f"{key}-email", channel="email",
                                     recipient="astreinte@example.fr"),
                       message=RenderedMessage(subject="Alerte", text="par mail"))
    return replace(primary, fallback=fallback)


def dispatcher(store: SqliteStore, clock: FakeClock, **channels: ScriptedChannel) -> Dispatcher:
    return Dispatcher(store, channels, clock=clock, policy=RetryPolicy(initial_s=1, max_s=10),
                      rng=random.Random(1))


def metric(counter: object, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())  # type: ignore[attr-defined]


async def test_permanent_failure_inserts_fallback(store: SqliteStore, clock: FakeClock) -> None:
    """A permanent SMS failure dead-letters it and plans the email to the same contact."""
    sms = ScriptedChannel(name="sms", script=[DeliveryError("opted out", retryable=False)])
    email = ScriptedChannel(name="email")
    await store.commit_plan([], [sms_with_email_fallback()], now=T0, deadline_s=600)
    before = metric(DEAD_LETTERS, channel="sms", reason="permanent")
    planned_before = metric(FALLBACKS_PLANNED, channel="sms", fallback="email")
    d = dispatcher(store, clock, sms=sms, email=email)
    assert await d.dispatch_once() == 1
    assert await d.dispatch_once() == 1  # the fallback, due now
    rows = {r.channel: r for r in await store.list_deliveries()}
    assert rows["sms"].status == "failed"
    assert rows["sms"].dead_letter_reason == "permanent"
    assert rows["email"].status == "sent"
    assert rows["email"].fallback_of == rows["sms"].id
    assert rows["email"].idempotency_key == "sms-1-email"
    assert [m.recipient for m in email.sent] == ["astreinte@example.fr"]
    assert email.sent[0].message.text == "par mail"
    assert metric(DEAD_LETTERS, channel="sms", reason="permanent") == before + 1
    assert metric(FALLBACKS_PLANNED, channel="sms", fallback="email") == planned_before + 1


async def test_sent_primary_plans_no_fallback(store: SqliteStore, clock: FakeClock) -> None:
    """A successful SMS drops its planned fallback; its parts are recorded and counted."""
    sms = ScriptedChannel(name="sms", script=[Receipt(provider_id="m1", segments=2)])
    await store.commit_plan([], [sms_with_email_fallback()], now=T0, deadline_s=600)
    before = metric(SMS_SEGMENTS, channel="sms")
    await dispatcher(store, clock, sms=sms).dispatch_once()
    [row] = await store.list_deliveries()
    assert (row.status, row.segments) == ("sent", 2)
    assert metric(SMS_SEGMENTS, channel="sms") == before + 2
    assert await store.mark_failed(row.id, T0, "late") == []  # no longer pending: no-op


async def test_fallback_deduplicates_with_direct_delivery(store: SqliteStore,
                                                          clock: FakeClock) -> None:
    """When the route also emails the contact directly, the fallback is not a second email."""
    direct = make_delivery("sms-1-email", channel="email", recipient="astreinte@example.fr")
    await store.commit_plan([], [sms_with_email_fallback(), direct], now=T0, deadline_s=600)
    sms_id = next(r.id for r in await store.list_deliveries() if r.channel == "sms")
    assert await store.mark_failed(sms_id, T0, "refused") == []
    assert len(await store.list_deliveries()) == 2


async def test_unconfigured_channel_is_a_dead_letter(store: SqliteStore,
                                                     clock: FakeClock) -> None:
    """No adapter for the channel: failed with reason 'unconfigured' and the fallback runs."""
    email = ScriptedChannel(name="email")
    await store.commit_plan([], [sms_with_email_fallback()], now=T0, deadline_s=600)
    d = dispatcher(store, clock, email=email)
    await d.dispatch_once()
    await d.dispatch_once()
    rows = {r.channel: r for r in await store.list_deliveries()}
    assert rows["sms"].dead_letter_reason == "unconfigured"
    assert "no adapter configured for channel 'sms'" in (rows["sms"].last_error or "")
    assert rows["email"].status == "sent"


async def test_deadline_dead_letter_reason(store: SqliteStore, clock: FakeClock) -> None:
    """A retry that would fall past the deadline ends as a dead letter, reason 'deadline'."""
    flaky = ScriptedChannel(script=[DeliveryError("busy", retryable=True, retry_after_s=5)])
    await store.commit_plan([], [make_delivery("k")], now=T0, deadline_s=1)
    d = dispatcher(store, clock, email=flaky)
    await d.dispatch_once()
    [row] = await store.list_deliveries()
    assert (row.status, row.dead_letter_reason) == ("failed", "deadline")


async def test_requeue_failed_replays_dead_letters(store: SqliteStore, clock: FakeClock) -> None:
    """requeue_failed turns chosen (or all) dead letters pending again, due now."""
    await store.commit_plan([], [make_delivery("a"), make_delivery("b"), make_delivery("c")],
                            now=T0, deadline_s=600)
    ids = {r.idempotency_key: r.id for r in await store.list_deliveries()}
    for key in ("a", "b"):
        await store.mark_failed(ids[key], T0, "refused")
    later = clock.advance(3600)
    assert await store.requeue_failed([ids["a"], ids["c"]], now=later, deadline_s=60) == [
        ids["a"]]
    assert await store.requeue_failed(None, now=later, deadline_s=60) == [ids["b"]]
    rows = {r.idempotency_key: r for r in await store.list_deliveries()}
    assert rows["a"].status == rows["b"].status == "pending"
    assert rows["a"].dead_letter_reason is None
    sent = ScriptedChannel()
    assert await dispatcher(store, clock, email=sent).dispatch_once() == 3


async def test_render_failure_activates_fallback_at_plan_time(store: SqliteStore) -> None:
    """A primary that failed to render is a dead letter at once and its fallback is planned."""
    primary = replace(sms_with_email_fallback(), failed_reason="template failed")
    await store.commit_plan([], [primary], now=T0, deadline_s=600)
    rows = {r.channel: r for r in await store.list_deliveries()}
    assert rows["sms"].status == "failed"
    assert rows["email"].status == "pending"


def test_token_bucket_spaces_sends() -> None:
    """rate 2/s, burst 1: reservations are 0, 0.5, 1.0 s away; cancel gives one back."""
    now = [100.0]
    bucket = TokenBucket(2.0, monotonic=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.5, 1.0]
    bucket.cancel()
    assert bucket.reserve() == 1.0
    now[0] += 10
    assert bucket.reserve() == 0.0


def test_token_bucket_window_bound() -> None:
    """Over any window, starts never exceed burst + rate × window (simulated clock)."""
    now = [0.0]
    bucket = TokenBucket(5.0, burst=1, monotonic=lambda: now[0])
    starts: list[float] = []
    for _ in range(50):
        starts.append(now[0] + bucket.reserve())
        now[0] += 0.01  # callers arrive much faster than the rate
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 1.0) <= 1 + 5


def test_token_bucket_rejects_bad_rates() -> None:
    """A zero rate or a burst below one is refused."""
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(1, burst=0.5)


async def test_rate_limited_row_is_deferred_without_counting(store: SqliteStore,
                                                             clock: FakeClock) -> None:
    """A token further away than the lease allows hands the row back, attempt not counted."""
    channel = ScriptedChannel(name="sms")
    await store.commit_plan([], [make_delivery(f"k{i}", channel="sms") for i in range(3)],
                            now=T0, deadline_s=600)
    d = Dispatcher(store, {"sms": channel}, clock=clock, policy=RetryPolicy(),
                   rate_limits={"sms": 0.01}, lease_s=10, send_timeout_s=5)
    await d.dispatch_once()
    rows = sorted(await store.list_deliveries(), key=lambda r: r.id)
    assert [r.status for r in rows] == ["sent", "pending", "pending"]
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert all(r.next_attempt_at is not None and r.next_attempt_at > T0 for r in rows[1:])
