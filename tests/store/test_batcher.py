"""WriterBatcher: concurrent submits share one writer transaction, results go back in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from router.store.sqlite.batcher import WriterBatcher
from router.store.sqlite.writer import SqliteWriter


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[SqliteWriter]:
    """A started writer over a real SQLite file with one table ``t(v)``."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "b.db", isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER NOT NULL)")
        return conn

    w = SqliteWriter(connect)
    await w.start()
    yield w
    await w.close()


class Recorder:
    """A write function that inserts its items and records every call."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on

    def __call__(self, conn: sqlite3.Connection, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(i,) for i in items])
        return [i * 10 for i in items]


async def _blocked(writer: SqliteWriter) -> tuple[threading.Event, asyncio.Future[None]]:
    """Occupy the writer thread until the returned event is set."""
    gate = threading.Event()
    started = threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        started.set()
        gate.wait(30)

    busy = asyncio.ensure_future(writer.submit(hold))
    await asyncio.to_thread(started.wait, 30)
    return gate, busy


async def test_callers_arriving_while_the_writer_is_busy_share_one_transaction(
    writer: SqliteWriter,
) -> None:
    """The job takes its items when the writer starts it: one INSERT batch, one COMMIT."""
    write = Recorder()
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, write)
    gate, busy = await _blocked(writer)
    callers = [asyncio.ensure_future(batcher.submit([n, n + 1])) for n in (1, 3, 5)]
    await asyncio.sleep(0)  # the callers run up to their await: items queued
    commits = writer.commits
    gate.set()
    await busy
    assert [await c for c in callers] == [[10, 20], [30, 40], [50, 60]]
    assert write.calls == [[1, 2, 3, 4, 5, 6]]
    assert writer.commits == commits + 2  # the holding job's COMMIT, then the batch's


async def test_a_failed_write_fails_only_the_callers_of_that_batch(writer: SqliteWriter) -> None:
    """An error reaches every caller of the failing batch; later submits still commit."""
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, Recorder(fail_on=2))
    gate, busy = await _blocked(writer)
    first = asyncio.ensure_future(batcher.submit([1]))
    second = asyncio.ensure_future(batcher.submit([2]))
    await asyncio.sleep(0)  # both callers queued their items
    gate.set()
    await busy
    for caller in (first, second):
        with pytest.raises(ValueError, match="bad item 2"):
            await caller
    assert await batcher.submit([3]) == [30]


async def test_max_items_splits_a_batch_and_serves_every_caller(writer: SqliteWriter) -> None:
    """Beyond max_items the rest goes into the next transaction: nobody is stranded."""
    write = Recorder()
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, write, max_items=4)
    gate, busy = await _blocked(writer)
    callers = [asyncio.ensure_future(batcher.submit([i])) for i in range(10)]
    await asyncio.sleep(0)  # every caller queued its item
    gate.set()
    await busy
    assert [await c for c in callers] == [[i * 10] for i in range(10)]
    assert max(len(call) for call in write.calls) <= 4
    assert sorted(i for call in write.calls for i in call) == list(range(10))


async def test_empty_submit_does_not_write(writer: SqliteWriter) -> None:
    """Submitting nothing returns at once without a writer job."""
    write = Recorder()
    assert await WriterBatcher(writer, write).submit([]) == []
    assert write.calls == []


async def test_on_committed_sees_items_and_results_before_callers_resume(
    writer: SqliteWriter,
) -> None:
    """The commit hook runs on the loop before any caller of the batch gets its result."""
    seen: list[tuple[list[int], list[int]]] = []

    def committed(items: list[int], results: Sequence[int]) -> None:
        seen.append((list(items), list(results)))

    batcher: WriterBatcher[int, int] = WriterBatcher(writer, Recorder(), on_committed=committed)
    assert await batcher.submit([7]) == [70]
    assert seen == [([7], [70])]


async def test_submits_after_a_batch_ended_start_a_new_one(writer: SqliteWriter) -> None:
    """Rounds of concurrent callers each get their own results (never stranded)."""
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, Recorder())
    for round_ in range(5):
        results = await asyncio.gather(*(batcher.submit([round_ * 10 + i]) for i in range(3)))
        assert results == [[(round_ * 10 + i) * 10] for i in range(3)]
    await batcher.drain()


async def test_drain_waits_for_the_queued_batch(writer: SqliteWriter) -> None:
    """drain() returns only once every submitted item is committed."""
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, Recorder())
    gate, busy = await _blocked(writer)
    caller = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    drained = asyncio.ensure_future(batcher.drain())
    for _ in range(50):  # loop turns, not time: ample for a drain that did not wait
        await asyncio.sleep(0)
    assert not drained.done()
    gate.set()
    await busy
    await drained
    assert caller.done() and caller.result() == [10]


async def test_submit_on_a_closed_writer_fails_at_once(writer: SqliteWriter) -> None:
    """A closed store refuses the items with an error instead of leaving the caller waiting."""
    batcher: WriterBatcher[int, int] = WriterBatcher(writer, Recorder())
    await writer.close()
    with pytest.raises(RuntimeError, match="store is closed"):
        await asyncio.wait_for(batcher.submit([1]), timeout=30)
    await batcher.drain()
