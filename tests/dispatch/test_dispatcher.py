"""The dispatcher: sends, retries with backoff, fails permanently, stops cleanly."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from router.channel import Channel
from router.clock import FakeClock
from router.errors import STORED_ERROR_CHARS, DeliveryError
from router.metrics import OUTBOX_DEPTH, REGISTRY
from router.models import Delivery, Receipt
from router.store import SqliteStore
from router.workers.dispatcher import Dispatcher
from router.workers.retry import RetryPolicy
from tests.dispatch.channels import ScriptedChannel
from tests.store.factories import T0, make_delivery

POLICY = RetryPolicy(initial_s=1, max_s=30)


def dispatcher(
    store: SqliteStore, clock: FakeClock, channels: Mapping[str, Channel], **kwargs: float
) -> Dispatcher:
    options: dict[str, float] = {"lease_s": 60, "poll_interval_s": 0.01} | kwargs
    concurrency = int(options.pop("concurrency", 8))
    return Dispatcher(store, channels, clock=clock, policy=POLICY, concurrency=concurrency,
                      rng=random.Random(7), **options)


async def plan(store: SqliteStore, *keys: str, deadline_s: float = 600) -> None:
    await store.commit_plan([], [make_delivery(k) for k in keys], now=T0, deadline_s=deadline_s)


async def only(store: SqliteStore) -> Delivery:
    (row,) = await store.list_deliveries()
    return row


async def eventually(check: Callable[[], object], what: str) -> None:
    """Poll ``check`` (sync or async) until truthy; fail with ``what`` after a long bound."""
    for _ in range(2000):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def turns(count: int) -> None:
    """Let the event loop run ``count`` times: a count of steps, not a duration."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_success_marks_sent_with_receipt(store: SqliteStore, clock: FakeClock) -> None:
    """A successful send is recorded as sent with the provider id, after the send."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[Receipt(provider_id="<m1@x>")])
    assert await dispatcher(store, clock, {"email": channel}).dispatch_once() == 1
    row = await only(store)
    assert row.status == "sent"
    assert row.provider_id == "<m1@x>"
    assert row.attempts == 1
    (message,) = channel.sent
    assert (message.delivery_id, message.recipient, message.idempotency_key) == (
        row.id, "ops@example.com", "k1")
    assert message.message.subject == "Panne é"


async def test_retryable_error_is_retried_after_backoff(
    store: SqliteStore, clock: FakeClock
) -> None:
    """A retryable error schedules a retry within the backoff window, then succeeds."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[DeliveryError("451 later", retryable=True)])
    d = dispatcher(store, clock, {"email": channel})
    await d.dispatch_once()
    row = await only(store)
    assert row.status == "pending"
    assert row.last_error == "451 later"
    assert row.next_attempt_at is not None
    assert T0 <= row.next_attempt_at <= T0 + timedelta(seconds=1)
    clock.set(row.next_attempt_at)
    assert await d.dispatch_once() == 1
    row = await only(store)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_permanent_error_fails_without_retry(store: SqliteStore, clock: FakeClock) -> None:
    """A non-retryable error marks the delivery failed with the reason, never retried."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[DeliveryError("550 no such user", retryable=False)])
    d = dispatcher(store, clock, {"email": channel})
    await d.dispatch_once()
    clock.advance(3600)
    assert await d.dispatch_once() == 0
    row = await only(store)
    assert (row.status, row.last_error, channel.calls) == ("failed", "550 no such user", 1)


async def test_stored_error_is_one_bounded_line(store: SqliteStore, clock: FakeClock) -> None:
    """However long and multi-line an adapter's error, last_error is one line of <= 1000."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[DeliveryError("refused:\n" + "<p>body</p>\n" * 2000,
                                                    retryable=False)])
    await dispatcher(store, clock, {"email": channel}).dispatch_once()
    row = await only(store)
    assert row.last_error is not None
    assert row.last_error.startswith("refused: <p>body</p> <p>body</p>")
    assert len(row.last_error) == STORED_ERROR_CHARS and "\n" not in row.last_error


async def test_retry_after_is_honoured(store: SqliteStore, clock: FakeClock) -> None:
    """A provider's Retry-After delays the next attempt at least that long."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[DeliveryError("429", retryable=True, retry_after_s=20)])
    await dispatcher(store, clock, {"email": channel}).dispatch_once()
    row = await only(store)
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= T0 + timedelta(seconds=20)


async def test_deadline_turns_retries_into_failure(store: SqliteStore, clock: FakeClock) -> None:
    """Once the next try would pass the deadline, the delivery fails with a clear reason."""
    await plan(store, "k1", deadline_s=5)
    errors: list[BaseException | Receipt] = [
        DeliveryError(f"timeout {i}", retryable=True) for i in range(50)]
    channel = ScriptedChannel(script=errors)
    d = dispatcher(store, clock, {"email": channel})
    while (row := await only(store)).status == "pending":
        assert row.next_attempt_at is not None
        clock.set(max(clock.now(), row.next_attempt_at))
        await d.dispatch_once()
    assert row.status == "failed"
    assert row.last_error == (
        f"deadline exceeded after {row.attempts} attempts: timeout {row.attempts - 1}")


async def test_unknown_channel_fails_permanently(store: SqliteStore, clock: FakeClock) -> None:
    """A delivery for a channel with no adapter fails at once with that reason."""
    await store.commit_plan([], [make_delivery("s", channel="sms", recipient="+33612345678")],
                            now=T0, deadline_s=600)
    await dispatcher(store, clock, {}).dispatch_once()
    row = await only(store)
    assert (row.status, row.last_error) == ("failed", "no adapter configured for channel 'sms'")


async def test_unexpected_exception_is_logged_and_retried(
    store: SqliteStore, clock: FakeClock
) -> None:
    """An adapter bug is logged with its traceback, treated as retryable and counted in
    tocsin_pipeline_item_failures_total{stage="send", reason=<class>} (reproducer: it
    was not counted, so TocsinPipelineItemFailing never saw it)."""
    await plan(store, "k1")
    channel = ScriptedChannel(script=[KeyError("oops")])
    labels = {"stage": "send", "reason": "KeyError"}
    before = REGISTRY.get_sample_value("tocsin_pipeline_item_failures_total", labels) or 0.0
    with capture_logs() as logs:
        await dispatcher(store, clock, {"email": channel}).dispatch_once()
    after = REGISTRY.get_sample_value("tocsin_pipeline_item_failures_total", labels)
    assert after == before + 1
    row = await only(store)
    assert row.status == "pending"
    assert row.last_error == "unexpected KeyError: 'oops'"
    (entry,) = [e for e in logs if e["event"] == "dispatch.unexpected_error"]
    assert entry["exc_info"] is True
    assert entry["log_level"] == "error"


async def test_send_timeout_is_retryable(store: SqliteStore, clock: FakeClock) -> None:
    """A send that does not finish within send_timeout_s is cancelled and retried."""
    await plan(store, "k1")
    channel = ScriptedChannel(gate=asyncio.Event())  # never opened
    await dispatcher(store, clock, {"email": channel}, send_timeout_s=0.05).dispatch_once()
    row = await only(store)
    assert row.status == "pending"
    assert row.last_error == "send timed out after 0.05s"


async def test_logs_mask_recipients(store: SqliteStore, clock: FakeClock) -> None:
    """Delivery logs carry the masked recipient, never the address."""
    await plan(store, "k1")
    with capture_logs() as logs:
        await dispatcher(store, clock, {"email": ScriptedChannel()}).dispatch_once()
    (entry,) = [e for e in logs if e["event"] == "delivery.sent"]
    assert entry["recipient"] == "o***@e***.com"
    assert "ops@example.com" not in repr(logs)


async def test_run_sends_everything_within_concurrency(
    store: SqliteStore, clock: FakeClock
) -> None:
    """The loop sends every due delivery, never more than ``concurrency`` at once."""
    await plan(store, *(f"k{i}" for i in range(20)))
    channel = ScriptedChannel()
    d = dispatcher(store, clock, {"email": channel}, concurrency=3)
    task = asyncio.create_task(d.run())
    await eventually(lambda: len(channel.sent) == 20, "20 sends")
    await d.stop()
    await task
    assert channel.max_in_flight <= 3
    rows = await store.list_deliveries(limit=100)
    assert len(rows) == 20 and {r.status for r in rows} == {"sent"}


async def test_notify_wakes_the_loop(store: SqliteStore, clock: FakeClock) -> None:
    """notify() makes the loop claim at once instead of waiting for the next poll."""
    channel = ScriptedChannel()
    d = dispatcher(store, clock, {"email": channel}, poll_interval_s=3600)
    OUTBOX_DEPTH.labels(status="due").set(99)  # stale: the loop's first pass resets it
    task = asyncio.create_task(d.run())
    # The loop claimed nothing, refreshed its gauges and sleeps for an hour.
    await eventually(lambda: REGISTRY.get_sample_value("tocsin_outbox_depth",
                                                       {"status": "due"}) == 0, "first pass")
    await plan(store, "k1")
    d.notify()
    await eventually(lambda: channel.sent, "a send after notify")
    await d.stop()
    await task


async def test_stop_lets_in_flight_sends_finish_and_claims_no_more(
    store: SqliteStore, clock: FakeClock
) -> None:
    """stop() waits for the send in flight and leaves unclaimed work untouched."""
    await plan(store, "a", "b")
    gate = asyncio.Event()
    channel = ScriptedChannel(gate=gate)
    d = dispatcher(store, clock, {"email": channel}, concurrency=1)
    task = asyncio.create_task(d.run())
    await eventually(lambda: channel.in_flight == 1, "one send in flight")
    stopping = asyncio.create_task(d.stop())
    await turns(50)  # ample for stop() to return if it did not wait for the send
    assert not stopping.done()
    gate.set()
    await stopping
    await task
    by_key = {r.idempotency_key: r for r in await store.list_deliveries()}
    assert by_key["a"].status == "sent"
    assert (by_key["b"].status, by_key["b"].attempts) == ("pending", 0)


async def test_stop_is_bounded_when_a_send_hangs(store: SqliteStore, clock: FakeClock) -> None:
    """A hanging send does not hold stop() beyond drain_timeout_s; the row stays pending."""
    await plan(store, "a")
    channel = ScriptedChannel(gate=asyncio.Event())  # never opened
    d = dispatcher(store, clock, {"email": channel}, send_timeout_s=30, drain_timeout_s=0.05)
    task = asyncio.create_task(d.run())
    await eventually(lambda: channel.in_flight == 1, "one send in flight")
    await d.stop()
    await task
    row = await only(store)
    assert (row.status, row.attempts) == ("pending", 1)


async def test_crash_mid_send_resends_exactly_once_after_restart(
    tmp_path: object, clock: FakeClock
) -> None:
    """A delivery claimed by a process that died is sent once after restart, then never."""
    path = f"{tmp_path}/crash.db"
    first = SqliteStore(path)
    await first.start()
    await plan(first, "k1")
    await first.claim_due(T0, 10, 60)  # claimed, then the process dies before mark_*
    await first.close()

    store = SqliteStore(path)
    await store.start()
    try:
        channel = ScriptedChannel()
        d = dispatcher(store, clock, {"email": channel})
        assert await d.dispatch_once() == 1
        clock.advance(3600)
        assert await d.dispatch_once() == 0
        assert len(channel.sent) == 1
        assert (await only(store)).status == "sent"
    finally:
        await store.close()


async def test_metrics_count_results(store: SqliteStore, clock: FakeClock) -> None:
    """Sends, retries and failures are counted per channel and result."""

    def value(result: str) -> float:
        sample = REGISTRY.get_sample_value(
            "tocsin_deliveries_total", {"channel": "email", "result": result})
        return sample or 0.0

    before = {r: value(r) for r in ("sent", "retry", "failed")}
    await plan(store, "a", "b", "c")
    channel = ScriptedChannel(script=[
        Receipt(), DeliveryError("x", retryable=True), DeliveryError("y", retryable=False)])
    await dispatcher(store, clock, {"email": channel}, concurrency=1).dispatch_once()
    d = dispatcher(store, clock, {"email": channel}, concurrency=1)
    await d.dispatch_once()
    await d.dispatch_once()
    assert {r: value(r) - before[r] for r in before} == {"sent": 1, "retry": 1, "failed": 1}


def test_send_timeout_must_be_shorter_than_lease(clock: FakeClock) -> None:
    """A send that could outlive its lease is refused at construction."""
    with pytest.raises(ValueError, match="lease_s"):
        Dispatcher(object(), {}, clock=clock, policy=POLICY, lease_s=10,  # type: ignore[arg-type]
                   send_timeout_s=10)
