"""The pipelined hand-off: decoding overlaps the write, writes and commits stay in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.kafka.deadletter import DeadLetter
from adapters.kafka.source import KafkaSource
from router.clock import SystemClock
from router.config.kafka import KafkaConfig
from router.models import IntakeRecord
from router.store.base import Backlog
from router.store.sqlite import SqliteStore
from tests.kafka.broker import FAST_GROUP, Tansu
from tests.kafka.kafkahelp import committed, eventually, produce, webhook_body

pytestmark = pytest.mark.integration


class _SlowIntake:
    """The real SQLite store behind a slow, observable and optionally failing write.

    Every ``append_intake_at`` waits ``delay_s`` first (a slow disk), records the
    positions it was asked to store, and fails while ``failures`` > 0 (nothing stored).
    With ``hold_first``, the first write waits for that event instead (at most 30 s), so
    that what the source does meanwhile does not depend on the machine's speed.
    """

    def __init__(self, store: SqliteStore, *, delay_s: float, failures: int = 0,
                 hold_first: asyncio.Event | None = None) -> None:
        self.store = store
        self.delay_s = delay_s
        self.failures = failures
        self.hold_first = hold_first
        self.writing = False
        self.writes: list[dict[tuple[str, str, int], int]] = []
        self.failed = 0

    async def append_intake_at(
        self, records: Sequence[IntakeRecord], positions: Mapping[tuple[str, str, int], int]
    ) -> list[int]:
        assert not self.writing, "two intake writes in flight at once"
        self.writing = True
        try:
            if self.hold_first is not None and not self.writes and not self.failed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hold_first.wait(), timeout=30)
            else:
                await asyncio.sleep(self.delay_s)
            if self.failures > 0:
                self.failures -= 1
                self.failed += 1
                raise OSError("injected: disk unavailable")
            ids = await self.store.append_intake_at(records, positions)
            self.writes.append(dict(positions))
            return ids
        finally:
            self.writing = False

    async def stream_positions(self, stream: str) -> dict[tuple[str, int], int]:
        return await self.store.stream_positions(stream)

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog:
        return await self.store.backlog(now, overdue_grace_s=overdue_grace_s)


class _WatchingSink:
    """A dead-letter sink that notes whether an intake write was in flight meanwhile."""

    def __init__(self, intake: _SlowIntake, sent: asyncio.Event) -> None:
        self.intake = intake
        self.sent = sent
        self.during_write: list[bool] = []
        self.letters: list[DeadLetter] = []

    async def send(self, letter: DeadLetter) -> None:
        self.during_write.append(self.intake.writing)
        self.letters.append(letter)
        self.sent.set()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "tocsin.db"), synchronous="NORMAL")
    await db.start()
    yield db
    await db.close()


def _config(tansu: Tansu, **changes: Any) -> KafkaConfig:
    fields: dict[str, Any] = {
        "bootstrap_servers": [tansu.bootstrap], "topics": ["alerts"], "group_id": "tocsin",
        "commit_interval_s": 0.1, "health_interval_s": 0.5, "dead_letter_retry_s": 0.2,
        "max_records": 2, **FAST_GROUP,
    }
    fields.update(changes)
    return KafkaConfig(**fields)


async def _run_until(source: KafkaSource, done: Any, what: str) -> None:
    task = asyncio.create_task(source.run())
    try:
        await eventually(done, what, timeout_s=60)
    finally:
        await source.stop()
        await asyncio.wait_for(task, timeout=60)


async def _intake_names(store: SqliteStore) -> list[str]:
    return [record.alert.labels["alertname"] for _, record in await store.fetch_intake(1000)]


async def test_next_batch_is_decoded_while_the_write_runs_and_writes_stay_in_order(
    tansu: Tansu, store: SqliteStore,
) -> None:
    """Poison in later batches is dead-lettered during earlier writes; positions only grow."""
    tansu.create_topic("alerts", partitions=1)
    values: list[bytes] = []
    for i in range(12):
        values.append(webhook_body(f"Ordered{i:02d}"))
        if i % 3 == 2:
            values.append(b"{poison")
    await produce(tansu.bootstrap, "alerts", values)
    # The first write (of the first batch) lasts until a dead letter was sent: the poison
    # of the second batch, if the source decodes it while that write runs.
    letter_sent = asyncio.Event()
    intake = _SlowIntake(store, delay_s=0.3, hold_first=letter_sent)
    sink = _WatchingSink(intake, letter_sent)
    source = KafkaSource(_config(tansu), intake, clock=SystemClock(), dead_letters=sink)

    async def all_handed_off() -> bool:
        return len(await _intake_names(store)) == 12

    await _run_until(source, all_handed_off, "12 alerts in the intake")
    assert await _intake_names(store) == [f"Ordered{i:02d}" for i in range(12)]
    assert len(sink.letters) == 4
    assert any(sink.during_write), "decoding never overlapped a write"
    offsets = [write[("tocsin", "alerts", 0)] for write in intake.writes]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert offsets[-1] == len(values)
    assert await committed(tansu.bootstrap, "tocsin", "alerts", 1) == {0: len(values)}


async def test_failed_write_refetches_its_batch_and_the_one_decoded_behind_it(
    tansu: Tansu, store: SqliteStore,
) -> None:
    """After failed writes every message is in the intake exactly once, in offset order."""
    tansu.create_topic("alerts", partitions=2)
    names = [f"Retry{i:02d}" for i in range(16)]
    for partition in range(2):
        await produce(tansu.bootstrap, "alerts",
                      [webhook_body(n) for n in names[partition::2]], partition=partition)
    intake = _SlowIntake(store, delay_s=0.1, failures=2)
    source = KafkaSource(_config(tansu), intake, clock=SystemClock())

    async def all_committed() -> bool:
        return await committed(tansu.bootstrap, "tocsin", "alerts", 2) == {0: 8, 1: 8}

    await _run_until(source, all_committed, "every offset committed")
    assert intake.failed == 2
    got = await _intake_names(store)
    assert sorted(got) == sorted(names)  # nothing lost, nothing twice
    for partition in range(2):  # per partition, in the order produced
        assert [n for n in got if n in names[partition::2]] == names[partition::2]
    assert await store.stream_positions("tocsin") == {("alerts", 0): 8, ("alerts", 1): 8}


async def test_a_failed_last_write_is_retried_without_a_batch_behind_it(
    tansu: Tansu, store: SqliteStore,
) -> None:
    """The only batch of an idle topic fails to write: it is fetched and written again."""
    tansu.create_topic("alerts", partitions=1)
    await produce(tansu.bootstrap, "alerts", [webhook_body(f"Lone{i}") for i in range(3)])
    intake = _SlowIntake(store, delay_s=0.05, failures=1)
    source = KafkaSource(_config(tansu, max_records=10), intake, clock=SystemClock())

    async def all_committed() -> bool:
        return await committed(tansu.bootstrap, "tocsin", "alerts", 1) == {0: 3}

    await _run_until(source, all_committed, "the failed batch written and committed")
    assert intake.failed == 1
    assert await _intake_names(store) == ["Lone0", "Lone1", "Lone2"]
