"""The intake processor's pipelined loop and the intake backlog it reads."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest

from router.clock import FakeClock
from router.errors import StoreUnavailable
from router.incidents.engine import AlertEvent
from router.models import IntakeRecord
from router.store import SqliteStore
from router.store.base import IncidentConflict
from router.store.sqlite.incidents import IncidentStore, SourceUpdate
from router.workers.intake import IntakeProcessor
from tests.incidents.harness import T_MON_10, load, make_alert
from tests.store.impls import sqlite_only


class _WatchedStore:
    """The real store; commits are held, recorded, and the first ``failures`` fail.

    A commit is held until a fetch completes while it is in flight (a pipelined loop is
    then seen fetching during its commit on any machine; bounded, so a loop that does not
    overlap only waits ``hold_s``), or, with ``gated``, until the test sets ``release``.
    """

    def __init__(self, store: SqliteStore, *, failures: int, gated: bool = False,
                 hold_s: float = 5.0, error: Exception | None = None) -> None:
        self.store = store
        self.failures = failures
        self.gated = gated
        self.hold_s = hold_s
        self.release = asyncio.Event()
        self.error = error or StoreUnavailable("injected: database is locked")
        self.committing = False
        self.started = 0  # commits begun
        self.fetched_while_committing = False
        self.committed: list[list[int]] = []
        self._fetched = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def claim_intake(self, limit: int, *, owner: str, now: datetime, lease_s: float,
                           after_id: int = 0) -> list[tuple[int, IntakeRecord]]:
        self.fetched_while_committing |= self.committing
        rows = await self.store.claim_intake(limit, owner=owner, now=now, lease_s=lease_s,
                                             after_id=after_id)
        if self.committing:  # the commit started while this fetch ran
            self.fetched_while_committing = True
            self._fetched.set()
        return rows

    async def commit_intake(self, intake_ids: Sequence[int], events: Sequence[AlertEvent],
                            sources: Sequence[SourceUpdate], *, now: datetime,
                            dead: Sequence[tuple[int, str]] = ()) -> datetime | None:
        self.committing = True
        self.started += 1
        self._fetched.clear()
        try:
            if self.gated:
                await self.release.wait()
                self.release.clear()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fetched.wait(), timeout=self.hold_s)
            if self.failures > 0:
                self.failures -= 1
                raise self.error
            earliest = await self.store.commit_intake(intake_ids, events, sources, now=now,
                                                      dead=dead)
            self.committed.append(list(intake_ids))
            return earliest
        finally:
            self.committing = False


async def _until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Poll ``check`` until true; fail with ``what`` after a bound generous under load."""
    for _ in range(1200):
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def _turns(count: int) -> None:
    """Let the event loop run ``count`` times (other tasks go as far as they can)."""
    for _ in range(count):
        await asyncio.sleep(0)


def _begun(watched: _WatchedStore, count: int) -> Callable[[], bool]:
    return lambda: watched.started == count


async def _drained(store: SqliteStore) -> bool:
    return not (await store.counts())["intake_pending"]


def _records(count: int) -> list[IntakeRecord]:
    return [IntakeRecord(source="alertmanager", received_at=T_MON_10,
                         alert=make_alert("HighLatency", starts_at=T_MON_10, instance=f"w{i}"),
                         meta={}) for i in range(count)]


async def test_run_routes_the_next_batch_while_one_commits_and_commits_in_order(
    store: SqliteStore, tmp_path: Path,
) -> None:
    """Fetching overlaps a commit; after a failed commit every row is applied once, in order."""
    ids = await store.append_intake(_records(10))
    watched = _WatchedStore(store, failures=1)
    rules = load(tmp_path)
    processor = IntakeProcessor(cast(IncidentStore, watched), lambda: rules,
                                clock=FakeClock(T_MON_10), deadline_s=3600, batch_size=2,
                                poll_interval_s=0.05)
    task = asyncio.create_task(processor.run())
    try:
        await _until(lambda: _drained(store), "every row routed")
    finally:
        await processor.stop()
        await task
    assert watched.fetched_while_committing
    assert [i for batch in watched.committed for i in batch] == ids
    detail = await store.get_incident((await store.list_incidents())[0].id)
    assert detail is not None and detail.summary.alerts_total == 10


async def test_a_batch_that_met_a_version_conflict_is_retried_not_dead_lettered(
    store: SqliteStore, tmp_path: Path,
) -> None:
    """IncidentConflict (another writer changed an incident) is transient: the rows are
    applied again later, none is set aside."""
    await store.append_intake(_records(4))
    watched = _WatchedStore(store, failures=1, error=IncidentConflict("injected"))
    rules = load(tmp_path)
    processor = IntakeProcessor(cast(IncidentStore, watched), lambda: rules,
                                clock=FakeClock(T_MON_10), deadline_s=3600, batch_size=10,
                                poll_interval_s=0.05)
    task = asyncio.create_task(processor.run())
    try:
        for _ in range(600):  # generous: a loaded machine
            if not (await store.counts())["intake_pending"]:
                break
            await asyncio.sleep(0.05)
    finally:
        await processor.stop()
        await task
    assert await store.list_intake(status="dead") == []
    assert [len(batch) for batch in watched.committed] == [4]


# SQLite only: a sqlite3 error injected into its writer job
@sqlite_only
async def test_a_batch_the_database_refused_is_retried_not_dead_lettered(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock met inside the store's own commit job reaches the processor as the store's
    StoreUnavailable (no sqlite3 error outside the store): the batch is retried whole."""
    import router.store.sqlite.store as sqlite_module

    await store.append_intake(_records(4))
    real, calls = sqlite_module.incident_store.apply_intake_job, 0

    def locked_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(*args)

    monkeypatch.setattr(sqlite_module.incident_store, "apply_intake_job", locked_once)
    rules = load(tmp_path)
    processor = IntakeProcessor(store, lambda: rules, clock=FakeClock(T_MON_10),
                                deadline_s=3600, batch_size=10, poll_interval_s=0.05)
    task = asyncio.create_task(processor.run())
    try:
        await _until(lambda: _drained(store), "every row routed")
    finally:
        await processor.stop()
        await task
    assert calls == 2  # the whole batch once more, not row by row
    assert await store.list_intake(status="dead") == []


async def test_fetch_after_an_id_skips_the_rows_being_committed(store: SqliteStore) -> None:
    """``after_id`` returns only unprocessed rows above it, oldest first."""
    ids = await store.append_intake(_records(5))
    assert [i for i, _ in await store.fetch_intake(10, after_id=ids[1])] == ids[2:]
    await store.commit_intake([ids[2]], [], [], now=T_MON_10)
    assert [i for i, _ in await store.fetch_intake(10, after_id=ids[0])] == [ids[1], *ids[3:]]


# SQLite only: its in-memory cache of fresh intake rows
@sqlite_only
async def test_a_backlog_beyond_the_memory_bound_keeps_its_oldest_rows_in_memory(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows routed next come from memory; only the newest overflow is read from disk."""
    import router.store.sqlite.store as sqlite_module

    monkeypatch.setattr(sqlite_module, "_FRESH_MAX", 3)
    records = _records(6)
    ids = await store.append_intake(records)
    # Mark the copies on disk: a record read back from disk shows it.
    with sqlite3.connect(tmp_path / "tocsin.db") as conn:
        conn.execute("UPDATE intake SET source = 'from-disk'")
    sources = [record.source for _, record in await store.fetch_intake(10)]
    assert sources == ["alertmanager"] * 3 + ["from-disk"] * 3
    assert [i for i, _ in await store.fetch_intake(10)] == ids


async def test_below_a_full_batch_the_commit_finishes_before_the_next_fetch(
    store: SqliteStore, tmp_path: Path,
) -> None:
    """Without a backlog (a batch smaller than batch_size) nothing is fetched while the
    commit runs: rows arriving meanwhile wait and join the next batch, not a small
    overlapped one with a commit of its own."""
    watched = _WatchedStore(store, failures=0, gated=True)
    rules = load(tmp_path)
    processor = IntakeProcessor(cast(IncidentStore, watched), lambda: rules,
                                clock=FakeClock(T_MON_10), deadline_s=3600, batch_size=50,
                                poll_interval_s=0.01)
    task = asyncio.create_task(processor.run())
    try:
        for burst in range(3):
            await store.append_intake(_records(3)[burst:burst + 1])
            processor.notify()
            if burst:
                # This burst landed while the previous commit is held: a loop that
                # overlapped would fetch it now; give it every chance, then release.
                await _turns(50)
                watched.release.set()
            await _until(_begun(watched, burst + 1), f"commit {burst} begun")
        watched.release.set()
        await _until(lambda: _drained(store), "every row routed")
    finally:
        watched.release.set()
        await processor.stop()
        await task
    assert not watched.fetched_while_committing
    assert sum(len(batch) for batch in watched.committed) == 3
