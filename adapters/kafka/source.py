"""Inbound adapter: consume alerts from Kafka as a consumer group, at least once.

The loop: fetch a batch (``getmany``), decode each message (:mod:`adapters.kafka.formats`),
send refused messages to the dead-letter topic, then write the batch's alerts **and**
the next offset of each partition to the intake in one durable transaction
(``store.append_intake_at``). Offsets are committed to Kafka only after that, in
batches (every ``commit_interval_s``), on partition revocation and at shutdown.

Pipelined: while a batch's write (and its fsync'ed group commit) runs in the store's
writer thread, the loop fetches and decodes the next batch; at most one write is in
flight, and the next one starts only after it committed, so writes, positions and
commits stay in fetch order. If a write fails, its batch and the one decoded behind it
are both fetched again (after ``dead_letter_retry_s``).

Why both: the Kafka commit tells the group where to resume; the positions in the store
tell *this* intake what it already holds. A message redelivered after a crash (handed
off, not yet committed) is recognised by its offset and skipped, so every message is
handed off to the intake exactly once, and the idempotency keys downstream make any
other duplicate harmless.

Poison messages never block a partition and are never lost: they go to the dead-letter
topic; if that produce fails, the partition is held at that offset (earlier messages
are handed off, nothing after it is committed) and retried after
``dead_letter_retry_s``. A failing intake write holds the whole batch the same way.

Back-pressure: the one decision of :mod:`router.backpressure`, shared with the webhook.
While a backlog bound holds (unrouted intake rows, incidents overdue, deliveries due now:
not those held for quiet hours or backing off), every assigned partition is paused; they
resume once every stage is back under ``backpressure.resume_ratio`` of its bound.

Readiness (:meth:`KafkaSource.not_ready_reason`): the consumer has an assignment and
the broker answered within ``unreachable_grace_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from aiokafka import ConsumerRebalanceListener  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from adapters.kafka.client import make_consumer, make_producer
from adapters.kafka.deadletter import (
    DeadLetter,
    DeadLetterError,
    DeadLetterSink,
    ProducerDeadLetters,
)
from adapters.kafka.formats import SOURCE, KafkaMessageError, MessageMeta, decode_message
from router.backpressure import Backpressure
from router.clock import Clock
from router.config import BackpressureConfig
from router.config.kafka import KafkaConfig
from router.logging import get_logger
from router.metrics import (
    ALERTS_RECEIVED,
    KAFKA_COMMITTED,
    KAFKA_CONSUMED,
    KAFKA_DEAD_LETTER_FAILURES,
    KAFKA_DEAD_LETTERED,
    KAFKA_HANDOFF_LATENCY,
    KAFKA_LAG,
    KAFKA_PAUSED,
    KAFKA_REDELIVERED,
)
from router.models import IntakeRecord
from router.store.base import Backlog

__all__ = ["IntakeSink", "KafkaSource"]

_log = get_logger("adapters.kafka.source")
_ACCEPTED = ALERTS_RECEIVED.labels(source=SOURCE, result="accepted")

_START_RETRY_S: Final = 2.0  # between attempts to reach the broker at startup
_PROBE_TIMEOUT_S: Final = 10.0  # bound on one health probe (end offsets)
_DEAD_LETTER_TIMEOUT_S: Final = 10.0


class IntakeSink(Protocol):
    """What the source needs of the store (``router.store.Store`` satisfies it)."""

    async def append_intake_at(
        self,
        records: Sequence[IntakeRecord],
        positions: Mapping[tuple[str, str, int], int],
    ) -> list[int]: ...

    async def stream_positions(self, stream: str) -> dict[tuple[str, int], int]: ...

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog: ...


class KafkaSource:
    """One consumer group member feeding the intake; ``run()`` until ``stop()``."""

    def __init__(
        self,
        config: KafkaConfig,
        store: IntakeSink,
        *,
        clock: Clock,
        on_handoff: Callable[[], None] | None = None,
        dead_letters: DeadLetterSink | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        """``backpressure``: the service's shared decision (default: one of its own with
        the default bounds, sampled by this source)."""
        self._config = config
        self._pressure = (backpressure if backpressure is not None
                          else Backpressure(store, BackpressureConfig(), clock=clock))
        self._store = store
        self._clock = clock
        self._on_handoff = on_handoff
        self._dead_letters = dead_letters
        self._stopping = False
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one hand-off or commit at a time
        self._consumer: Any = None
        self._started = False
        self._assigned: set[Any] = set()
        self._stored: dict[tuple[str, int], int] = {}  # next offset already in the intake
        self._handed: dict[Any, int] = {}  # tp -> next offset handed off (to commit)
        self._committed: dict[Any, int] = {}  # tp -> last committed offset
        self._uncommitted: dict[Any, int] = {}  # tp -> messages handed off, not committed
        self._last_commit = time.monotonic()
        self._last_contact: float | None = None
        self._paused = False
        self._hold_until = 0.0
        # The batch whose durable write is running, and what its messages were.
        self._in_flight: tuple[asyncio.Task[bool], dict[Any, _Scan]] | None = None

    # ------------------------------------------------------------------ public surface

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The partitions this member owns, as ``(topic, partition)``."""
        return frozenset((tp.topic, tp.partition) for tp in self._assigned)

    @property
    def paused(self) -> bool:
        """True while back-pressure pauses the partitions."""
        return self._paused

    def not_ready_reason(self) -> str | None:
        """Why ``/readyz`` should say no, or None when the consumer is healthy."""
        grace = self._config.unreachable_grace_s
        if not self._started:
            return "kafka consumer not started (broker unreachable?)"
        if self._last_contact is not None and time.monotonic() - self._last_contact > grace:
            return f"kafka broker unreachable for more than {grace:g}s"
        if not self._assigned:
            return "kafka consumer has no partition assigned"
        return None

    async def run(self) -> None:
        """Connect (retrying while the broker is unreachable), consume until stopped."""
        self._stored = await self._store.stream_positions(self._config.group_id)
        while not self._stopping:
            consumer = make_consumer(self._config)
            producer = None
            try:
                await consumer.start()
                sink = self._dead_letters
                if sink is None:
                    producer = make_producer(self._config)
                    await producer.start()
                    sink = ProducerDeadLetters(
                        producer, self._config.dead_letter_topic,
                        timeout_s=_DEAD_LETTER_TIMEOUT_S,
                    )
            except KafkaError as exc:
                _log.warning("kafka.unreachable", error=repr(exc),
                             servers=self._config.bootstrap_servers)
                await _stop_quietly(producer, consumer)
                await self._sleep(_START_RETRY_S)
                continue
            try:
                await self._consume(consumer, sink)
            finally:
                await self._shutdown(consumer, producer)
            return

    async def stop(self) -> None:
        """Ask the loop to finish its batch, commit what was handed off and leave."""
        self._stopping = True
        self._wake.set()

    # ------------------------------------------------------------------ the loop

    async def _consume(self, consumer: Any, sink: DeadLetterSink) -> None:
        self._consumer = consumer
        listener = _Rebalance(self)
        if self._config.topic_pattern is not None:
            consumer.subscribe(pattern=self._config.topic_pattern, listener=listener)
        else:
            consumer.subscribe(topics=list(self._config.topics), listener=listener)
        self._started = True
        self._last_contact = time.monotonic()
        _log.info("kafka.consumer_started", group=self._config.group_id,
                  topics=self._config.topics or self._config.topic_pattern)
        health = asyncio.create_task(self._health_loop(consumer), name="tocsin-kafka-health")
        try:
            while not self._stopping:
                if self._in_flight is not None and self._in_flight[0].done():
                    async with self._lock:  # a failed write is rewound even if no batch follows
                        failed = await self._settle()
                        if failed is not None:
                            self._rewind(consumer, [failed])
                await self._backpressure(consumer)
                if self._hold_until > time.monotonic():
                    await self._sleep(self._hold_until - time.monotonic())
                    continue
                batch = await consumer.getmany(
                    timeout_ms=self._config.fetch_timeout_ms,
                    max_records=self._config.max_records,
                )
                if batch:
                    self._last_contact = time.monotonic()
                    async with self._lock:
                        await self._hand_off(consumer, batch, sink)
                if time.monotonic() - self._last_commit >= self._config.commit_interval_s:
                    async with self._lock:
                        await self._commit(consumer, self._assigned)
        finally:
            health.cancel()
            await asyncio.gather(health, return_exceptions=True)

    async def _hand_off(
        self, consumer: Any, batch: Mapping[Any, Sequence[Any]], sink: DeadLetterSink
    ) -> None:
        """Decode ``batch``, then start its durable write once the previous one is done.

        Decoding (and dead-lettering) this batch overlaps the previous batch's write; the
        writes themselves run one after the other, in fetch order, so the positions in
        the store and the offsets committed only ever move forward over durable rows.
        """
        started = time.monotonic()
        now = self._clock.now()
        records: list[IntakeRecord] = []
        scans: dict[Any, _Scan] = {}
        for tp, messages in batch.items():
            if tp not in self._assigned or not messages:
                continue  # revoked since the fetch: the new owner consumes it
            scans[tp] = await self._scan(tp, messages, sink, now, records)
        for tp, scan in scans.items():
            if scan.hold is not None:  # nothing at or after it is handed off: fetch it again
                consumer.seek(tp, scan.hold)
                self._hold_until = time.monotonic() + self._config.dead_letter_retry_s
        failed = await self._settle()
        if failed is not None:
            # The previous write failed and holds its partitions: this batch, fetched
            # after it, must not be written either. Both are fetched again after the hold.
            self._rewind(consumer, [failed, scans])
            return
        positions = {
            (self._config.group_id, tp.topic, tp.partition): scan.handed
            for tp, scan in scans.items()
            if scan.handed is not None
        }
        if not positions:  # only redelivered messages: nothing to write
            self._after_hand_off(consumer, scans, 0)
            return
        write = self._write(consumer, records, positions, scans, started)
        self._in_flight = (asyncio.create_task(write, name="tocsin-kafka-handoff"), scans)

    async def _write(
        self,
        consumer: Any,
        records: Sequence[IntakeRecord],
        positions: Mapping[tuple[str, str, int], int],
        scans: Mapping[Any, _Scan],
        started: float,
    ) -> bool:
        """The durable write of one batch and, once committed, its bookkeeping."""
        try:
            await self._store.append_intake_at(records, positions)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure holds the batch
            _log.error("kafka.intake_write_failed", error=str(exc),
                       error_type=type(exc).__name__, alerts=len(records))
            self._hold_until = time.monotonic() + self._config.dead_letter_retry_s
            return False
        KAFKA_HANDOFF_LATENCY.observe(time.monotonic() - started)
        self._after_hand_off(consumer, scans, len(records))  # now committable
        return True

    async def _settle(self) -> Mapping[Any, _Scan] | None:
        """Wait for the write in flight; the scans of its batch if it failed, else None."""
        flight = self._in_flight
        if flight is None:
            return None
        self._in_flight = None
        task, scans = flight
        return None if await task else scans

    def _rewind(self, consumer: Any, batches: Sequence[Mapping[Any, _Scan]]) -> None:
        """Fetch again from the first message of each partition in ``batches`` (oldest first)."""
        firsts: dict[Any, int] = {}
        for scans in batches:
            for tp, scan in scans.items():
                firsts.setdefault(tp, scan.first)
        for tp, offset in firsts.items():
            if tp in self._assigned:
                consumer.seek(tp, offset)

    async def _scan(
        self,
        tp: Any,
        messages: Sequence[Any],
        sink: DeadLetterSink,
        now: datetime,
        records: list[IntakeRecord],
    ) -> _Scan:
        """Decode one partition's messages into ``records`` (dead-lettering refusals)."""
        scan = _Scan(first=messages[0].offset)
        already = self._stored.get((tp.topic, tp.partition), -1)
        for msg in messages:
            if msg.offset < already:  # redelivered: already in the intake
                _redelivered(tp.topic)
                scan.seen = msg.offset + 1
                continue
            try:
                records.extend(self._decode(msg, now))
            except KafkaMessageError as exc:
                if not await self._dead_letter(sink, msg, exc.reason, str(exc)):
                    scan.hold = msg.offset
                    break
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not wedge the partition
                _log.exception("kafka.decode_failed", topic=tp.topic,
                               partition=tp.partition, offset=msg.offset)
                if not await self._dead_letter(sink, msg, "decode_failed", repr(exc)):
                    scan.hold = msg.offset
                    break
            scan.handed = scan.seen = msg.offset + 1
            scan.count += 1
        return scan

    def _after_hand_off(self, consumer: Any, scans: Mapping[Any, _Scan], alerts: int) -> None:
        for tp, scan in scans.items():
            if scan.handed is not None:
                self._stored[(tp.topic, tp.partition)] = scan.handed
            if scan.seen is None:
                continue
            self._handed[tp] = scan.seen  # what may be committed
            self._uncommitted[tp] = self._uncommitted.get(tp, 0) + scan.count
            KAFKA_CONSUMED.labels(topic=tp.topic).inc(scan.count)
            highwater = consumer.highwater(tp)
            if highwater is not None:
                KAFKA_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(0, highwater - scan.seen)
                )
        if alerts:
            self._pressure.note_intake(alerts)
            _ACCEPTED.inc(alerts)
            if self._on_handoff is not None:
                self._on_handoff()

    def _decode(self, msg: Any, now: datetime) -> list[IntakeRecord]:
        meta = MessageMeta(
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            timestamp_ms=msg.timestamp,
            key=msg.key,
            headers=msg.headers or (),
        )
        return decode_message(
            msg.value,
            meta,
            default_format=self._config.format_for(msg.topic),
            labels=self._config.labels,
            now=now,
        )

    async def _dead_letter(self, sink: DeadLetterSink, msg: Any, reason: str, error: str) -> bool:
        letter = DeadLetter(
            topic=msg.topic, partition=msg.partition, offset=msg.offset,
            timestamp_ms=msg.timestamp, key=msg.key, value=msg.value,
            headers=list(msg.headers or ()), reason=reason, error=error,
        )
        try:
            await sink.send(letter)
        except DeadLetterError as exc:
            KAFKA_DEAD_LETTER_FAILURES.labels(topic=msg.topic).inc()
            _log.error("kafka.dead_letter_failed", topic=msg.topic, partition=msg.partition,
                       offset=msg.offset, error=str(exc))
            return False
        KAFKA_DEAD_LETTERED.labels(topic=msg.topic, reason=reason).inc()
        _log.warning("kafka.dead_lettered", topic=msg.topic, partition=msg.partition,
                     offset=msg.offset, reason=reason, error=error[:200])
        return True

    # ------------------------------------------------------------------ commits

    async def _commit(self, consumer: Any, partitions: Iterable[Any]) -> None:
        """Commit the handed-off offsets of ``partitions`` (call with the lock held)."""
        self._last_commit = time.monotonic()
        offsets = {
            tp: self._handed[tp]
            for tp in partitions
            if tp in self._handed and self._handed[tp] != self._committed.get(tp)
        }
        if not offsets:
            return
        # Taken before the await: a write completing meanwhile adds its own messages.
        counts = {tp: self._uncommitted.pop(tp, 0) for tp in offsets}
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # Not fatal: the positions in the store keep redelivered messages out.
            _log.warning("kafka.commit_failed", error=repr(exc), partitions=len(offsets))
            for tp, count in counts.items():
                self._uncommitted[tp] = self._uncommitted.get(tp, 0) + count
            return
        self._last_contact = time.monotonic()
        for tp, offset in offsets.items():
            self._committed[tp] = offset
            KAFKA_COMMITTED.labels(topic=tp.topic).inc(counts[tp])
        _log.debug("kafka.committed", partitions=len(offsets))

    # ------------------------------------------------------------------ rebalance

    async def _on_revoked(self, revoked: Iterable[Any]) -> None:
        gone = set(revoked)
        async with self._lock:  # let an in-flight hand-off finish, then commit it
            failed = await self._settle()
            if self._consumer is not None:
                if failed is not None:
                    self._rewind(self._consumer, [failed])
                await self._commit(self._consumer, gone & self._assigned)
            self._assigned -= gone
        for tp in gone:
            self._handed.pop(tp, None)
            self._committed.pop(tp, None)
            self._uncommitted.pop(tp, None)
            _drop_lag(tp)
        _log.info("kafka.partitions_revoked", partitions=_names(gone))

    async def _on_assigned(self, assigned: Iterable[Any]) -> None:
        new = set(assigned)
        self._assigned |= new
        if self._paused and new and self._consumer is not None:
            self._consumer.pause(*new)
        await self._forget_reset_topics(new)
        _log.info("kafka.partitions_assigned", partitions=_names(new))

    async def _forget_reset_topics(self, partitions: set[Any]) -> None:
        """Drop stored positions beyond a partition's end: the topic was recreated."""
        known = [tp for tp in partitions if (tp.topic, tp.partition) in self._stored]
        if not known or self._consumer is None:
            return
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                ends = await self._consumer.end_offsets(known)
        except (TimeoutError, KafkaError) as exc:
            _log.warning("kafka.end_offsets_failed", error=repr(exc))
            return
        for tp, end in ends.items():
            key = (tp.topic, tp.partition)
            if self._stored.get(key, -1) > end:
                _log.warning("kafka.partition_reset", topic=tp.topic, partition=tp.partition,
                             stored_offset=self._stored[key], end_offset=end)
                del self._stored[key]

    # ------------------------------------------------------------------ back-pressure, health

    async def _backpressure(self, consumer: Any) -> None:
        # Sampled every backpressure.check_interval_s, and early when what was handed off
        # since could cross the intake bound: a pause overshoots by one batch at most.
        bound = await self._pressure.refresh()
        if bound is not None and not self._paused:
            self._paused = True
            consumer.pause(*self._assigned)
            KAFKA_PAUSED.set(1)
            _log.warning("kafka.paused", stage=bound.stage, items=bound.items,
                         bound=bound.key, limit=bound.limit)
        elif bound is None and self._paused:
            self._paused = False
            consumer.resume(*consumer.paused())
            KAFKA_PAUSED.set(0)
            _log.info("kafka.resumed")

    async def _health_loop(self, consumer: Any) -> None:
        """Probe the broker (end offsets of the assignment) and refresh the lag gauges."""
        while True:
            await asyncio.sleep(self._config.health_interval_s)
            partitions = list(self._assigned)
            if not partitions:
                continue
            try:
                async with asyncio.timeout(_PROBE_TIMEOUT_S):
                    ends = await consumer.end_offsets(partitions)
            except (TimeoutError, KafkaError) as exc:
                _log.warning("kafka.probe_failed", error=repr(exc))
                continue
            self._last_contact = time.monotonic()
            for tp, end in ends.items():
                if tp in self._assigned:
                    position = self._handed.get(tp, self._committed.get(tp))
                    if position is not None:
                        KAFKA_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(
                            max(0, end - position)
                        )

    # ------------------------------------------------------------------ lifecycle helpers

    async def _shutdown(self, consumer: Any, producer: Any) -> None:
        try:
            async with self._lock:
                await self._settle()  # a failed write is simply not committed
                await self._commit(consumer, self._assigned)
        finally:
            self._started = False
            self._consumer = None
            await _stop_quietly(producer, consumer)
            KAFKA_PAUSED.set(0)
            _log.info("kafka.consumer_stopped")

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass


@dataclass(slots=True)
class _Scan:
    """What decoding one partition's slice of a batch found."""

    first: int  # offset of the first message of the slice
    handed: int | None = None  # next offset after the last message handed off or dead-lettered
    seen: int | None = None  # next offset after the last message looked at (incl. skipped)
    count: int = 0  # messages handed off or dead-lettered
    hold: int | None = None  # offset to fetch again (its dead letter was not acknowledged)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """Commits what was handed off before partitions move; tracks the assignment."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._source._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._source._on_assigned(assigned)


def _redelivered(topic: str) -> None:
    KAFKA_REDELIVERED.labels(topic=topic).inc()


def _drop_lag(tp: Any) -> None:
    try:
        KAFKA_LAG.remove(tp.topic, str(tp.partition))
    except KeyError:
        pass  # never measured on this member


def _names(partitions: Iterable[Any]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)


async def _stop_quietly(*clients: Any) -> None:
    for client in clients:
        if client is None:
            continue
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                await client.stop()
        except (TimeoutError, KafkaError) as exc:
            _log.warning("kafka.client_stop_failed", error=repr(exc))
