"""Behaviour of the store: durability, idempotency, leases, reads (every implementation,
through the ``store``/``store_url`` fixtures), and what only SQLite has: group commit,
its in-memory intake cache, its writer thread (``sqlite_store``)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from router.errors import StoreUnavailable
from router.models import Receipt
from router.store import SqliteStore, Store, open_store
from tests.store.factories import T0, make_delivery, make_record


async def reopen(url: str, **kwargs: bool) -> Store:
    store = open_store(url, **kwargs)
    await store.start()
    return store


async def test_intake_survives_close_and_reopen(store_url: str) -> None:
    """Records acknowledged by append_intake are read back identical after a reopen."""
    store = await reopen(store_url)
    records = [make_record("HostDown", instance="a"), make_record("DiskFull", instance="b")]
    ids = await store.append_intake(records)
    await store.close()

    store = await reopen(store_url)
    try:
        fetched = await store.fetch_intake(10)
    finally:
        await store.close()
    assert [i for i, _ in fetched] == ids
    assert [r for _, r in fetched] == records


async def test_fetch_intake_is_oldest_first_and_limited(store: Store) -> None:
    """fetch_intake returns unprocessed rows in arrival order, at most ``limit``."""
    ids = await store.append_intake([make_record(f"A{i}") for i in range(5)])
    fetched = await store.fetch_intake(3)
    assert [i for i, _ in fetched] == ids[:3]
    assert [r.alert.labels["alertname"] for _, r in fetched] == ["A0", "A1", "A2"]


async def test_concurrent_appends_are_group_committed(sqlite_store: SqliteStore) -> None:
    """1000 concurrent single-record appends share a handful of transactions."""
    before = sqlite_store.commits
    results = await asyncio.gather(
        *(sqlite_store.append_intake([make_record("A", n=str(i))]) for i in range(1000))
    )
    assert len({ids[0] for ids in results}) == 1000
    assert sqlite_store.commits - before <= 100  # one per alert would be 1000
    assert (await sqlite_store.counts())["intake_pending"] == 1000


async def test_group_commit_respects_max_batch(tmp_path: Path) -> None:
    """No writer transaction holds more than max_batch jobs."""
    store = SqliteStore(str(tmp_path / "t.db"), max_batch=10)
    await store.start()
    try:
        before = store.commits
        writer = store._writer  # the writer's own batching, below the intake coalescing
        await asyncio.gather(
            *(writer.submit(lambda conn: conn.execute("SELECT 1")) for _ in range(100))
        )
        assert store.commits - before >= 10
    finally:
        await store.close()


async def test_concurrent_appends_get_their_own_ids(store: Store) -> None:
    """Coalesced appends return, to each caller, the ids of exactly its own records."""
    results = await asyncio.gather(
        *(store.append_intake([make_record(n=f"{i}-{j}") for j in range(i % 3 + 1)])
          for i in range(60))
    )
    stored = dict(await store.fetch_intake(1000))
    for i, ids in enumerate(results):
        assert len(ids) == i % 3 + 1
        for j, intake_id in enumerate(ids):
            assert stored[intake_id].alert.labels["n"] == f"{i}-{j}"


async def test_one_call_with_many_records_is_one_transaction(sqlite_store: SqliteStore) -> None:
    """A 500-record append costs exactly one commit."""
    before = sqlite_store.commits
    ids = await sqlite_store.append_intake([make_record(n=str(i)) for i in range(500)])
    assert len(ids) == 500
    assert sqlite_store.commits - before == 1


async def test_returned_ids_name_the_rows_on_disk(tmp_path: Path) -> None:
    """Ids of a batch inserted by several multi-row INSERTs are the ids of exactly its rows."""
    path = tmp_path / "t.db"
    store = SqliteStore(str(path))
    await store.start()
    try:
        results = await asyncio.gather(
            store.append_intake([make_record(n=f"a{i}") for i in range(70)]),  # 32 + 32 + 6
            store.append_intake([make_record(n="b")]),
            store.append_intake([make_record(n=f"c{i}") for i in range(33)]),
        )
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        on_disk = {
            row_id: fingerprint
            for row_id, fingerprint in conn.execute("SELECT id, fingerprint FROM intake")
        }
    expected = [[f"a{i}" for i in range(70)], ["b"], [f"c{i}" for i in range(33)]]
    assert len(on_disk) == 104
    for ids, names in zip(results, expected, strict=True):
        assert [on_disk[i] for i in ids] == [make_record(n=n).alert.fingerprint for n in names]


async def test_commit_plan_ignores_duplicate_keys_and_marks_intake(store: Store) -> None:
    """A delivery whose idempotency key exists is not inserted twice; intake is marked."""
    ids = await store.append_intake([make_record(), make_record("B")])
    inserted = await store.commit_plan(
        ids[:1], [make_delivery("k1"), make_delivery("k1")], now=T0, deadline_s=600
    )
    assert inserted == 1
    again = await store.commit_plan(
        ids[1:], [make_delivery("k1"), make_delivery("k2")], now=T0, deadline_s=600
    )
    assert again == 1
    assert await store.fetch_intake(10) == []
    assert await store.counts(T0) == {"intake_pending": 0, "pending": 2, "due": 2, "failed": 0}
    rows = await store.list_deliveries()
    assert {d.idempotency_key for d in rows} == {"k1", "k2"}
    first = rows[-1]
    assert first.deadline_at == T0 + timedelta(seconds=600)
    assert first.next_attempt_at == T0
    assert first.message.subject == "Panne é"
    assert first.attempts == 0


async def test_commit_plan_records_render_failures_as_failed(store: Store) -> None:
    """A planned delivery with a failed_reason lands as failed, never claimed."""
    await store.commit_plan(
        [], [make_delivery("bad", failed_reason="template boom")], now=T0, deadline_s=60
    )
    (row,) = await store.list_deliveries()
    assert row.status == "failed"
    assert row.last_error == "template boom"
    assert await store.claim_due(T0 + timedelta(hours=1), 10, 30) == []


async def test_claimed_row_is_not_claimed_again_until_lease_expires(store: Store) -> None:
    """A lease hides a claimed row from other claims until it runs out."""
    await store.commit_plan([], [make_delivery("k1")], now=T0, deadline_s=600)
    (claimed,) = await store.claim_due(T0, 10, lease_s=30)
    assert claimed.attempts == 1
    assert await store.claim_due(T0 + timedelta(seconds=29), 10, lease_s=30) == []
    (again,) = await store.claim_due(T0 + timedelta(seconds=30), 10, lease_s=30)
    assert again.id == claimed.id
    assert again.attempts == 2


async def test_claim_only_due_rows_oldest_first_up_to_limit(store: Store) -> None:
    """claim_due takes rows due at ``now``, in due order, at most ``limit``."""
    await store.commit_plan([], [make_delivery("a")], now=T0, deadline_s=600)
    later = T0 + timedelta(seconds=10)
    await store.commit_plan([], [make_delivery("b"), make_delivery("c")], now=later,
                            deadline_s=600)
    assert [d.idempotency_key for d in await store.claim_due(T0, 10, 30)] == ["a"]
    got = await store.claim_due(later, 1, 30)
    assert [d.idempotency_key for d in got] == ["b"]


async def test_mark_retry_makes_row_due_at_next_attempt(store: Store) -> None:
    """After mark_retry the row is due again at next_attempt_at, not before."""
    await store.commit_plan([], [make_delivery()], now=T0, deadline_s=600)
    (d,) = await store.claim_due(T0, 10, 30)
    retry_at = T0 + timedelta(seconds=5)
    await store.mark_retry(d.id, retry_at, "451 try later", at=T0)
    assert await store.claim_due(T0 + timedelta(seconds=4), 10, 30) == []
    (again,) = await store.claim_due(retry_at, 10, 30)
    assert again.last_error == "451 try later"
    assert again.status == "pending"


async def test_mark_sent_and_failed_are_terminal(store: Store) -> None:
    """sent and failed rows are never claimed again and later marks do not change them."""
    await store.commit_plan([], [make_delivery("s"), make_delivery("f")], now=T0,
                            deadline_s=600)
    s, f = await store.claim_due(T0, 10, 30)
    at = T0 + timedelta(seconds=1)
    await store.mark_sent(s.id, at, Receipt(provider_id="<id@x>"))
    await store.mark_failed(f.id, at, "550 no such user")
    await store.mark_retry(s.id, at, "late", at=at)  # no effect: no longer pending
    await store.mark_failed(s.id, at, "late")
    assert await store.claim_due(T0 + timedelta(days=1), 10, 30) == []
    by_key = {d.idempotency_key: d for d in await store.list_deliveries()}
    assert by_key["s"].status == "sent"
    assert by_key["s"].sent_at == at
    assert by_key["s"].provider_id == "<id@x>"
    assert by_key["s"].next_attempt_at is None
    assert by_key["f"].status == "failed"
    assert by_key["f"].last_error == "550 no such user"
    assert await store.counts(T0) == {"intake_pending": 0, "pending": 0, "due": 0, "failed": 1}


async def test_lease_survives_restart_when_not_released(store_url: str) -> None:
    """Without release on start, a row claimed before a crash waits for its lease."""
    store = await reopen(store_url)
    await store.commit_plan([], [make_delivery()], now=T0, deadline_s=600)
    await store.claim_due(T0, 10, 60)
    await store.close()  # the process "dies" mid-send: no mark_*

    store = await reopen(store_url, release_leases_on_start=False)
    try:
        assert await store.claim_due(T0 + timedelta(seconds=59), 10, 60) == []
        (d,) = await store.claim_due(T0 + timedelta(seconds=60), 10, 60)
        assert d.attempts == 2
    finally:
        await store.close()


async def test_restart_releases_dead_leases_once(tmp_path: Path) -> None:
    """By default a restart makes an interrupted send due at once, and only once.

    SQLite only: one process by design, so a lease found at start is a dead one. On
    PostgreSQL other instances may hold leases: they come back after the lease (above).
    """
    store_url = f"sqlite:///{tmp_path / 'tocsin.db'}"
    store = await reopen(store_url)
    await store.commit_plan([], [make_delivery("k"), make_delivery("done")], now=T0,
                            deadline_s=600)
    k, done = await store.claim_due(T0, 10, 60)
    await store.mark_sent(done.id, T0, Receipt())
    await store.close()

    store = await reopen(store_url)
    try:
        (again,) = await store.claim_due(T0, 10, 60)
        assert again.id == k.id
        assert await store.claim_due(T0, 10, 60) == []
    finally:
        await store.close()


async def test_list_deliveries_filters_and_pages_newest_first(store: Store) -> None:
    """list_deliveries filters by status and pages newest first."""
    await store.commit_plan([], [make_delivery(f"k{i}") for i in range(5)], now=T0,
                            deadline_s=600)
    (first, *_) = await store.claim_due(T0, 1, 30)
    await store.mark_failed(first.id, T0, "boom")
    assert [d.idempotency_key for d in await store.list_deliveries()] == [
        "k4", "k3", "k2", "k1", "k0"]
    page = await store.list_deliveries(status="pending", limit=2, offset=1)
    assert [d.idempotency_key for d in page] == ["k3", "k2"]
    assert [d.idempotency_key for d in await store.list_deliveries(status="failed")] == ["k0"]
    with pytest.raises(ValueError, match="unknown delivery status"):
        await store.list_deliveries(status="lost")


async def test_ping_and_counts_on_empty_store(store: Store) -> None:
    """An empty started store answers ping and zero counts."""
    assert await store.ping()
    assert await store.counts() == {"intake_pending": 0, "pending": 0, "due": 0, "failed": 0}


async def test_closed_store_refuses_work(store_url: str) -> None:
    """After close, writes raise and ping answers False."""
    store = await reopen(store_url)
    await store.close()
    await store.close()  # idempotent
    assert not await store.ping()
    with pytest.raises(RuntimeError, match="closed"):
        await store.append_intake([make_record()])


async def test_naive_datetimes_are_rejected(store: Store) -> None:
    """The store refuses naive datetimes instead of guessing their zone."""
    with pytest.raises(ValueError, match="naive"):
        await store.claim_due(datetime(2024, 1, 1), 1, 30)  # naive on purpose


async def test_timestamps_round_trip_in_utc(store: Store) -> None:
    """A non-UTC aware time is stored and read back as the same instant in UTC."""
    from zoneinfo import ZoneInfo

    paris = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Paris"))
    await store.commit_plan([], [make_delivery()], now=paris, deadline_s=1)
    (d,) = await store.list_deliveries()
    assert d.created_at == paris
    assert d.created_at.tzinfo == UTC


async def test_failing_job_fails_alone_in_its_batch(sqlite_store: SqliteStore) -> None:
    """One job raising inside a group-committed batch fails only its own caller."""
    writer = sqlite_store._writer  # the writer seam itself is under test here

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO nonexistent VALUES (1)")

    results = await asyncio.gather(
        *(sqlite_store.append_intake([make_record(n=str(i))]) for i in range(20)),
        writer.submit(bad),
        *(sqlite_store.append_intake([make_record(n=str(i))]) for i in range(20, 40)),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], StoreUnavailable)  # the driver's error does not leak
    assert isinstance(errors[0].__cause__, sqlite3.OperationalError)
    assert (await sqlite_store.counts())["intake_pending"] == 40


async def test_a_write_the_database_refuses_is_store_unavailable(
        sqlite_store: SqliteStore) -> None:
    """Reproducer: a writer job's sqlite3.OperationalError (a lock, a full disk) reached
    the caller as is; now it is a StoreUnavailable whose cause is the driver's error."""

    def locked(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(StoreUnavailable, match="database is locked") as caught:
        await sqlite_store._writer.submit(locked)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)


async def test_a_read_the_database_refuses_is_store_unavailable(
        sqlite_store: SqliteStore) -> None:
    """Reproducer: a read on the reader connection raised sqlite3.OperationalError (or a
    bare DatabaseError for a damaged file); now both are StoreUnavailable with the cause."""
    for driver_error in (sqlite3.OperationalError("disk I/O error"),
                         sqlite3.DatabaseError("database disk image is malformed")):

        def damaged(conn: sqlite3.Connection, error: Exception = driver_error) -> None:
            raise error

        with pytest.raises(StoreUnavailable) as caught:
            await sqlite_store._read(damaged)
        assert caught.value.__cause__ is driver_error


async def test_a_bug_in_a_job_is_not_taken_for_an_unavailable_store(
        sqlite_store: SqliteStore) -> None:
    """A constraint a job violates stays the driver's IntegrityError (a bug, not a retry)."""

    def duplicate(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TEMP TABLE t (x INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1), (1)")

    with pytest.raises(sqlite3.IntegrityError):
        await sqlite_store._writer.submit(duplicate)


async def test_fetch_intake_mixes_memory_and_disk_in_id_order(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records beyond the in-memory bound are read from disk; order and content unchanged."""
    import router.store.sqlite.store as sqlite_module

    monkeypatch.setattr(sqlite_module, "_FRESH_MAX", 3)
    records = [make_record("A", n=str(i)) for i in range(6)]
    ids = [i for r in records for i in await sqlite_store.append_intake([r])]
    fetched = await sqlite_store.fetch_intake(10)
    assert [i for i, _ in fetched] == ids
    assert [r for _, r in fetched] == records


async def test_append_intake_at_returns_the_ids_of_its_rows(sqlite_store: SqliteStore) -> None:
    """Stream hand-off ids are those of the rows, in order, positions stored with them."""
    first = await sqlite_store.append_intake([make_record("A")])
    records = [make_record("B", n=str(i)) for i in range(3)]
    ids = await sqlite_store.append_intake_at(records, {("g", "t", 0): 7})
    assert ids == [first[0] + 1, first[0] + 2, first[0] + 3]
    assert dict(await sqlite_store.fetch_intake(10))[ids[2]] == records[2]
    assert await sqlite_store.stream_positions("g") == {("t", 0): 7}


async def test_counts_tell_due_from_waiting(store: Store) -> None:
    """A delivery deferred to later (quiet hours, backoff) is pending but not due; the
    backlog that matters (due) counts only what should be sending now."""
    await store.commit_plan([], [make_delivery("now"), make_delivery("later")], now=T0,
                            deadline_s=600)
    later = next(d for d in await store.list_deliveries() if d.idempotency_key == "later")
    await store.defer(later.id, T0 + timedelta(hours=8))
    assert await store.counts(T0) == {"intake_pending": 0, "pending": 2, "due": 1, "failed": 0}
    assert (await store.counts(T0 + timedelta(hours=9)))["due"] == 2
