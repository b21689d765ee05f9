"""The Kafka source in-process against a real tansu broker and a real SQLite intake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.kafka import client as kafka_client
from adapters.kafka import source as kafka_source
from adapters.kafka.deadletter import DeadLetter, DeadLetterError
from adapters.kafka.source import KafkaSource
from router.backpressure import Backpressure
from router.clock import Clock, FakeClock, SystemClock
from router.config import BackpressureConfig
from router.config.kafka import KafkaConfig
from router.metrics import REGISTRY
from router.store.sqlite import SqliteStore
from tests.incidents.harness import Harness, load, make_alert
from tests.kafka.broker import FAST_GROUP, Tansu
from tests.kafka.kafkahelp import committed, eventually, produce, read_topic, webhook_body
from tests.store.factories import make_delivery

pytestmark = pytest.mark.integration


def _config(tansu: Tansu, **changes: Any) -> KafkaConfig:
    fields: dict[str, Any] = {
        "bootstrap_servers": [tansu.bootstrap], "topics": ["alerts"], "group_id": "tocsin",
        "commit_interval_s": 0.2, "health_interval_s": 0.5,
        "dead_letter_retry_s": 0.2, **FAST_GROUP,
    }
    fields.update(changes)
    return KafkaConfig(**fields)


def _pressure(store: SqliteStore, clock: Clock | None = None, **bounds: Any) -> Backpressure:
    """The back-pressure decision with small bounds, sampled every 50 ms."""
    config = BackpressureConfig(**{"check_interval_s": 0.05, "resume_ratio": 0, **bounds})
    return Backpressure(store, config, clock=clock if clock is not None else SystemClock())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "tocsin.db"), synchronous="NORMAL")
    await db.start()
    yield db
    await db.close()


@asynccontextmanager
async def running(source: KafkaSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        await source.stop()
        await asyncio.wait_for(task, timeout=60)


async def _pending(store: SqliteStore) -> int:
    return (await store.counts())["intake_pending"]


async def test_hands_off_then_commits_what_is_in_the_intake(
    tansu: Tansu, store: SqliteStore
) -> None:
    """Every message lands in the intake once; committed offsets = positions = ends."""
    tansu.create_topic("alerts", partitions=3)
    values = [webhook_body(f"Handoff{i}") for i in range(12)]
    for partition in range(3):
        await produce(tansu.bootstrap, "alerts", values[partition::3], partition=partition)
    source = KafkaSource(_config(tansu), store, clock=SystemClock())
    async with running(source):
        await eventually(lambda: _is(_pending(store), 12), "12 alerts in the intake")
        await eventually(lambda: _true(source.not_ready_reason() is None), "readiness")
    assert source.not_ready_reason() is not None  # stopped: not ready any more
    assert await store.stream_positions("tocsin") == {("alerts", p): 4 for p in range(3)}
    assert await committed(tansu.bootstrap, "tocsin", "alerts", 3) == {0: 4, 1: 4, 2: 4}


async def test_poison_goes_to_the_dead_letter_topic_and_the_next_message_is_processed(
    tansu: Tansu, store: SqliteStore
) -> None:
    """Original bytes, key and headers plus topic/partition/offset/error headers; counted."""
    tansu.create_topic("alerts", partitions=1)
    before = _sample("tocsin_kafka_messages_dead_lettered_total",
                     {"topic": "alerts", "reason": "malformed_json"})
    await produce(tansu.bootstrap, "alerts", [b"{oops", webhook_body("AfterPoison")],
                  keys=[b"poison-key", b"good"], headers=[("trace", b"t-1")])
    source = KafkaSource(_config(tansu, dead_letter_topic="alerts-dlq"), store,
                         clock=SystemClock())
    async with running(source):
        await eventually(lambda: _is(_pending(store), 1), "the good message in the intake")
    [letter] = await read_topic(tansu.bootstrap, "alerts-dlq", 1)
    assert letter.value == b"{oops"
    assert letter.key == b"poison-key"
    headers = dict(letter.headers)
    assert headers["trace"] == b"t-1"
    assert headers["tocsin-dlq-topic"] == b"alerts"
    assert headers["tocsin-dlq-partition"] == b"0"
    assert headers["tocsin-dlq-offset"] == b"0"
    assert headers["tocsin-dlq-reason"] == b"malformed_json"
    assert b"malformed JSON" in headers["tocsin-dlq-error"]
    [(_, record)] = await store.fetch_intake(10)
    assert record.alert.labels["alertname"] == "AfterPoison"
    after = _sample("tocsin_kafka_messages_dead_lettered_total",
                    {"topic": "alerts", "reason": "malformed_json"})
    assert after == before + 1


class _FlakySink:
    """A dead-letter sink that refuses the first ``failures`` sends (then keeps letters)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.letters: list[DeadLetter] = []

    async def send(self, letter: DeadLetter) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise DeadLetterError("injected: dead-letter topic unavailable")
        self.letters.append(letter)


async def test_failed_dead_letter_holds_the_partition_and_is_retried(
    tansu: Tansu, store: SqliteStore
) -> None:
    """While the DLQ refuses, nothing at or past the poison offset is committed or lost."""
    tansu.create_topic("alerts", partitions=1)
    await produce(tansu.bootstrap, "alerts",
                  [webhook_body("Before"), b"[]", webhook_body("After")])
    sink = _FlakySink(failures=1_000_000)
    source = KafkaSource(_config(tansu), store, clock=SystemClock(), dead_letters=sink)
    async with running(source):
        await eventually(lambda: _is(_pending(store), 1), "the message before the poison")
        await eventually(lambda: _true(sink.failures < 1_000_000 - 2), "two failed attempts")
        assert await committed(tansu.bootstrap, "tocsin", "alerts", 1) == {0: 1}
        assert await _pending(store) == 1  # "After" is held behind the poison
        sink.failures = 0
        await eventually(lambda: _is(_pending(store), 2), "the message after the poison")
    assert [letter.offset for letter in sink.letters] == [1]
    assert await committed(tansu.bootstrap, "tocsin", "alerts", 1) == {0: 3}


async def test_backpressure_pauses_then_resumes_when_the_intake_catches_up(
    tansu: Tansu, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the intake bound the partitions pause (no unbounded buffering); they resume
    after."""
    tansu.create_topic("alerts", partitions=1)
    await produce(tansu.bootstrap, "alerts", [webhook_body(f"Bp{i}") for i in range(30)])
    source = KafkaSource(_config(tansu, max_records=2, fetch_timeout_ms=50), store,
                         clock=SystemClock(),
                         backpressure=_pressure(store, max_intake_pending=4))
    fetches = _record_fetches(monkeypatch, source)
    async with running(source):
        await eventually(lambda: _true(source.paused), "paused")
        seen = len(fetches)
        # The loop keeps fetching while paused (nothing routes meanwhile): each fetch
        # made paused brings nothing, whatever the machine's speed.
        await eventually(lambda: _true(len(fetches) >= seen + 3), "three fetches while paused")
        assert [n for paused, n in fetches[seen:seen + 3]] == [0, 0, 0]
        assert all(paused for paused, _ in fetches[seen:seen + 3])
        assert await _pending(store) < 30
        assert _sample("tocsin_kafka_paused", {}) == 1
        # The intake catches up (rows routed): the consumer resumes, pauses again at the
        # next 4, ... until every message was handed off.
        await eventually(lambda: _routed_total(store, 30), "all 30 handed off", timeout_s=60)
        # The last batch may have been handed off after the probe routed: keep routing.
        await eventually(lambda: _resumed(source, store), "resumed at the end")
    assert [n for paused, n in fetches if paused and n] == []  # never while paused
    assert any(not paused for paused, _ in fetches[seen:])  # and it did resume


def _record_fetches(monkeypatch: pytest.MonkeyPatch, source: KafkaSource
                    ) -> list[tuple[bool, int]]:
    """(paused, records returned) of every fetch the source's consumer makes."""
    fetches: list[tuple[bool, int]] = []

    def make(config: KafkaConfig) -> Any:
        consumer = kafka_client.make_consumer(config)
        fetch = consumer.getmany

        async def getmany(*args: Any, **kwargs: Any) -> Any:
            paused = source.paused  # only the loop itself pauses or resumes, between fetches
            batch = await fetch(*args, **kwargs)
            fetches.append((paused, sum(len(messages) for messages in batch.values())))
            return batch

        consumer.getmany = getmany
        return consumer

    monkeypatch.setattr(kafka_source, "make_consumer", make)
    return fetches


async def test_deliveries_held_for_later_do_not_pause_the_consumer(
    tansu: Tansu, store: SqliteStore
) -> None:
    """A night of notices held by quiet hours (pending, due in the morning) is not a
    backlog: with many more of them than the bounds the consumer keeps consuming."""
    now = SystemClock().now()
    await store.commit_plan([], [make_delivery(f"held-{i}") for i in range(10)], now=now,
                            deadline_s=86_400)
    for delivery in await store.list_deliveries(limit=100):
        await store.defer(delivery.id, now + timedelta(hours=8))
    tansu.create_topic("alerts", partitions=1)
    await produce(tansu.bootstrap, "alerts", [webhook_body(f"Night{i}") for i in range(3)])
    source = KafkaSource(_config(tansu), store, clock=SystemClock(),
                         backpressure=_pressure(store, max_intake_pending=4,
                                                max_due_deliveries=4))
    async with running(source):
        await eventually(lambda: _is(_pending(store), 3), "all 3 handed off")
        assert not source.paused
        assert _sample("tocsin_kafka_paused", {}) == 0


async def test_overdue_incidents_pause_the_consumer_until_the_scheduler_caught_up(
    tansu: Tansu, store: SqliteStore, tmp_path: Path,
) -> None:
    """Reproducer of the flood on Kafka: incidents overdue (the scheduler behind, intake
    and outbox empty) pause the partitions; once they are flushed, consumption resumes."""
    harness = Harness(store, load(tmp_path), FakeClock(SystemClock().now()))
    await harness.receive(*(make_alert(f"Late{i}", starts_at=harness.clock.now())
                            for i in range(3)))
    harness.clock.advance(60)  # due at +30 s: overdue, nothing flushed them
    tansu.create_topic("alerts", partitions=1)
    await produce(tansu.bootstrap, "alerts", [webhook_body(f"Held{i}") for i in range(5)])
    source = KafkaSource(_config(tansu), store, clock=SystemClock(),
                         backpressure=_pressure(store, harness.clock, max_overdue_incidents=2,
                                                resume_ratio=0.5))
    async with running(source):
        await eventually(lambda: _true(source.paused and bool(source.assignment)),
                         "paused with its partition assigned")
        assert _sample("tocsin_kafka_paused", {}) == 1
        assert await _pending(store) == 0  # paused before the first fetch
        await harness.tick(0)  # the scheduler flushes the overdue incidents
        await eventually(lambda: _is(_pending(store), 5), "all 5 handed off after the resume")
        assert not source.paused


async def _route_everything(store: SqliteStore) -> None:
    """Mark every intake row processed (what the intake processor does after routing)."""
    rows = await store.fetch_intake(1000)
    await store.commit_plan([i for i, _ in rows], [], now=SystemClock().now(), deadline_s=60)


async def _routed_total(store: SqliteStore, total: int) -> bool:
    await _route_everything(store)
    positions = await store.stream_positions("tocsin")
    return positions.get(("alerts", 0)) == total


async def _resumed(source: KafkaSource, store: SqliteStore) -> bool:
    await _route_everything(store)
    return not source.paused


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _true(value: bool) -> bool:
    return value


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
