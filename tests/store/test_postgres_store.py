"""What only the PostgreSQL store has: several instances on one database, and faults.

Against the session's throwaway cluster (tests/services/postgres.py): migrations run once
when instances start together; concurrent claims never share a row; a connection killed
mid-transaction (``pg_terminate_backend``) loses and duplicates nothing; a server that is
down makes the store unavailable (never a driver exception) and work resumes once it is
back; a server unreachable at start is a clear error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from router.errors import ConfigError, StoreError, StoreUnavailable
from router.store import PostgresStore, open_store
from router.store.base import IncidentConflict
from router.store.postgres import incidents as pg_incidents
from router.store.postgres.migrate import available_migrations
from tests.services.ports import free_port
from tests.services.postgres import PostgresServer, postgres_server
from tests.store.factories import T0, make_delivery, make_record


@pytest.fixture
def server() -> PostgresServer:
    """The session's cluster (skip, or fail under TOCSIN_REQUIRE_SERVICES=1, without it)."""
    return postgres_server()


@pytest.fixture
def dbname(server: PostgresServer) -> str:
    """A new empty database of the cluster."""
    return server.create_database()


async def _started(url: str) -> PostgresStore:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    await store.start()
    return store


@pytest.fixture
async def pair(server: PostgresServer, dbname: str) -> AsyncIterator[tuple[PostgresStore,
                                                                           PostgresStore]]:
    """Two instances' stores on one database, started together."""
    a, b = await asyncio.gather(_started(server.url(dbname)), _started(server.url(dbname)))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _select(server: PostgresServer, dbname: str, sql: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        return list(conn.execute(sql).fetchall())


async def test_two_instances_starting_together_migrate_once(
        pair: tuple[PostgresStore, PostgresStore], server: PostgresServer,
        dbname: str) -> None:
    """Under the advisory lock one instance applies the migrations, the other none."""
    a, b = pair
    names = [name for _, name, _ in available_migrations()]
    assert sorted([a.applied_migrations, b.applied_migrations]) == [[], names]
    assert _select(server, dbname, "SELECT version, name FROM schema_version ORDER BY 1") == [
        (number, name) for number, name, _ in available_migrations()]


async def test_a_database_of_a_newer_tocsin_is_refused(server: PostgresServer,
                                                       dbname: str) -> None:
    """An unknown schema version is a ConfigError, not a silent misuse."""
    store = await _started(server.url(dbname))
    await store.close()
    with psycopg.connect(server.url(dbname), autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version, name) VALUES (9999, 'future')")
    again = open_store(server.url(dbname))
    with pytest.raises(ConfigError, match="newer than this Tocsin"):
        await again.start()


async def test_concurrent_claims_of_two_instances_share_no_row(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """Claims racing on one database (SKIP LOCKED) split the rows: each row once."""
    a, b = pair
    ids = await a.append_intake([make_record(n=str(i)) for i in range(200)])
    await a.commit_plan([], [make_delivery(f"k{i}") for i in range(200)], now=T0,
                        deadline_s=600)
    intake = await asyncio.gather(*(
        store.claim_intake(20, owner=f"o{n}", now=T0, lease_s=60)
        for n, store in enumerate([a, b] * 5)))
    claimed = [i for batch in intake for i, _ in batch]
    assert sorted(claimed) == ids
    deliveries = await asyncio.gather(*(store.claim_due(T0, 25, 60) for store in [a, b] * 4))
    leased = [d.id for batch in deliveries for d in batch]
    assert len(leased) == len(set(leased)) == 200


async def test_a_dead_instances_claims_are_taken_after_its_lease(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """Instance A claims then dies (closes without committing): B waits for the lease only."""
    a, b = pair
    ids = await a.append_intake([make_record(n=str(i)) for i in range(3)])
    assert [i for i, _ in await a.claim_intake(10, owner="a", now=T0, lease_s=60)] == ids
    await a.close()
    assert await b.claim_intake(10, owner="b", now=T0 + timedelta(seconds=59), lease_s=60) == []
    taken = await b.claim_intake(10, owner="b", now=T0 + timedelta(seconds=60), lease_s=60)
    assert [i for i, _ in taken] == ids


async def test_the_same_delivery_planned_by_two_instances_is_inserted_once(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """Idempotency by the unique key: concurrent plans of one notice make one row."""
    a, b = pair
    inserted = await asyncio.gather(*(
        store.commit_plan([], [make_delivery("same")], now=T0, deadline_s=60)
        for store in [a, b] * 4))
    assert sum(inserted) == 1
    assert len(await a.list_deliveries()) == 1


async def test_a_connection_killed_mid_transaction_loses_and_duplicates_nothing(
        server: PostgresServer, dbname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_terminate_backend between the batch's writes and its processed marks: the whole
    transaction rolls back (StoreUnavailable), and the retry applies the rows once."""
    store = await _started(server.url(dbname))
    try:
        ids = await store.append_intake([make_record(n=str(i)) for i in range(3)])
        written, release = asyncio.Event(), asyncio.Event()
        real = pg_incidents.dead_letter_intake

        async def stalled(conn: Any, dead: Any, now: Any) -> None:
            written.set()  # the rows are marked processed in this transaction, not committed
            await release.wait()
            await real(conn, dead, now)

        monkeypatch.setattr(pg_incidents, "dead_letter_intake", stalled)
        task = asyncio.create_task(store.commit_intake(ids[:2], [], [], now=T0,
                                                       dead=[(ids[2], "poison")]))
        await asyncio.wait_for(written.wait(), 10)
        assert server.terminate(dbname) >= 1
        release.set()
        with pytest.raises(StoreUnavailable) as caught:
            await task
        assert isinstance(caught.value.__cause__, psycopg.Error)  # kept as the cause only
        monkeypatch.setattr(pg_incidents, "dead_letter_intake", real)
        assert [i for i, _ in await store.fetch_intake(10)] == ids  # nothing of it committed
        await store.commit_intake(ids[:2], [], [], now=T0, dead=[(ids[2], "poison")])
        assert await store.fetch_intake(10) == []
        assert [d["id"] for d in await store.list_intake(status="dead")] == [ids[2]]
    finally:
        await store.close()


async def test_a_plan_killed_mid_transaction_is_planned_once_on_retry(
        server: PostgresServer, dbname: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox: deliveries inserted then the connection killed before COMMIT leave no row;
    the retry inserts each once, and a second retry none (idempotency keys)."""
    from router.store.postgres import outbox

    store = await _started(server.url(dbname))
    try:
        ids = await store.append_intake([make_record()])
        real, calls = outbox.insert_delivery, 0
        gate = asyncio.Event()

        async def slow(conn: Any, d: Any, now: Any, deadline: Any) -> int | None:
            nonlocal calls
            calls += 1
            new_id = await real(conn, d, now, deadline)
            if calls == 2:  # the second of three inserted: kill the session now
                assert await asyncio.to_thread(server.terminate, dbname) >= 1
                gate.set()
            return new_id

        monkeypatch.setattr(outbox, "insert_delivery", slow)
        plan = [make_delivery(f"k{i}") for i in range(3)]
        with pytest.raises(StoreUnavailable):
            await store.commit_plan(ids, plan, now=T0, deadline_s=60)
        assert gate.is_set()
        monkeypatch.setattr(outbox, "insert_delivery", real)
        assert await store.list_deliveries() == []
        assert await store.counts(T0) == {"intake_pending": 1, "pending": 0, "due": 0,
                                          "failed": 0}
        assert await store.commit_plan(ids, plan, now=T0, deadline_s=60) == 3
        assert await store.commit_plan(ids, plan, now=T0, deadline_s=60) == 0
        assert sorted(d.idempotency_key for d in await store.list_deliveries()) == [
            "k0", "k1", "k2"]
    finally:
        await store.close()


async def test_a_stopped_server_is_unavailable_then_work_resumes(
        server: PostgresServer, dbname: str) -> None:
    """PostgreSQL stopped: ping is False and writes raise StoreUnavailable (in about the
    pool timeout, not a hang); restarted: the same store works again, nothing lost."""
    store = open_store(server.url(dbname) + "?pool_timeout_s=1")
    await store.start()
    try:
        (before,) = await store.append_intake([make_record("Before")])
        await asyncio.to_thread(server.stop)
        try:
            assert not await store.ping()
            with pytest.raises(StoreUnavailable) as caught:
                await store.append_intake([make_record("During")])
            assert not isinstance(caught.value, psycopg.Error)
        finally:
            await asyncio.to_thread(server.start)
        deadline = asyncio.get_running_loop().time() + 30
        while not await store.ping():  # the pool reconnects with its own back-off
            assert asyncio.get_running_loop().time() < deadline, "store never came back"
            await asyncio.sleep(0.2)
        (after,) = await store.append_intake([make_record("After")])
        assert [i for i, _ in await store.fetch_intake(10)] == [before, after]
    finally:
        await store.close()


async def test_an_unreachable_server_at_start_is_a_clear_error() -> None:
    """Nothing listens: start raises StoreUnavailable naming the server, not the password."""
    port = free_port()
    store = open_store(f"postgresql://tocsin:s3cret@127.0.0.1:{port}/tocsin?connect_timeout=1")
    with pytest.raises(StoreUnavailable, match=f"cannot connect to PostgreSQL at "
                                               f"127.0.0.1:{port}/tocsin") as caught:
        await store.start()
    assert "s3cret" not in str(caught.value)
    assert not await store.ping()


async def test_a_value_the_server_refuses_is_a_store_error(server: PostgresServer,
                                                           dbname: str) -> None:
    """A driver error that is not about the connection (a NUL in text) is a StoreError
    with the driver's as its cause, and the store keeps working."""
    store = await _started(server.url(dbname))
    try:
        with pytest.raises(StoreError) as caught:
            await store.commit_plan([], [make_delivery("nul\x00key")], now=T0, deadline_s=1)
        assert not isinstance(caught.value, StoreUnavailable | psycopg.Error)
        assert await store.commit_plan([], [make_delivery("ok")], now=T0, deadline_s=1) == 1
    finally:
        await store.close()


async def test_two_instances_routing_one_group_open_one_incident(
        pair: tuple[PostgresStore, PostgresStore], tmp_path: Any) -> None:
    """Two intake processors on two instances race on one new group: the loser's batch is
    an IncidentConflict (open-group unique key or version), retried whole; in the end one
    incident holds every alert, and no row is dead-lettered."""
    from router.clock import FakeClock
    from router.models import IntakeRecord
    from router.workers.intake import IntakeProcessor
    from tests.incidents.harness import T_MON_10, load, make_alert

    a, b = pair
    rules = load(tmp_path)
    processors = [IntakeProcessor(store, lambda: rules, clock=FakeClock(T_MON_10),
                                  deadline_s=3600, batch_size=5) for store in (a, b)]
    records = [IntakeRecord(source="alertmanager", received_at=T_MON_10, meta={},
                            alert=make_alert("HostDown", instance=f"i{n}", starts_at=T_MON_10))
               for n in range(40)]
    for start in range(0, len(records), 10):
        await a.append_intake(records[start:start + 10])
    conflicts = 0
    for _ in range(40):  # bounded: each round routes at least one batch
        if (await a.counts())["intake_pending"] == 0:
            break
        for outcome in await asyncio.gather(*(p.process_once() for p in processors),
                                            return_exceptions=True):
            if isinstance(outcome, BaseException):  # the worker loop logs it, retries
                assert isinstance(outcome, IncidentConflict), outcome
                conflicts += 1
    assert (await a.counts())["intake_pending"] == 0
    assert await a.list_intake(status="dead") == []
    (incident,) = await b.list_incidents()
    assert incident.alerts_total == 40


async def test_concurrent_appends_share_transactions(server: PostgresServer,
                                                     dbname: str) -> None:
    """Group commit: 500 concurrent calls take far fewer transactions, each gets its ids."""
    store = await _started(server.url(dbname))
    try:
        before = store.commits
        results = await asyncio.gather(*(store.append_intake([make_record(n=str(i))])
                                         for i in range(500)))
        assert store.commits - before <= 100
        assert sorted(i for ids in results for i in ids) == [
            i for i, _ in await store.fetch_intake(1000)]
        by_id = dict(await store.fetch_intake(1000))
        assert [by_id[ids[0]].alert.labels["n"] for ids in results] == [
            str(i) for i in range(500)]
    finally:
        await store.close()


async def test_a_bad_call_fails_alone_in_its_group(server: PostgresServer,
                                                   dbname: str) -> None:
    """A value the server refuses fails its own call; the others of its group commit."""
    store = await _started(server.url(dbname))
    try:
        results = await asyncio.gather(
            *(store.append_intake([make_record(n=str(i))]) for i in range(10)),
            store.append_intake([replace(make_record(), source="nul\x00")]),
            *(store.append_intake([make_record(n=str(i))]) for i in range(10, 20)),
            return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], StoreError)
        assert (await store.counts())["intake_pending"] == 20
    finally:
        await store.close()


async def test_libpq_parameters_of_the_url_win_over_the_defaults(server: PostgresServer,
                                                                 dbname: str) -> None:
    """The URL's own settings (here application_name) are kept; the session is in UTC."""
    store = await _started(server.url(dbname) + "?application_name=tocsin-eu-1&pool_size=2")
    try:
        assert await store.ping()
        names = {row[0] for row in _select(server, dbname, "SELECT application_name FROM"
                                                           " pg_stat_activity")}
        assert "tocsin-eu-1" in names
        assert (await store._one("SHOW TimeZone"))[0] == "UTC"  # the session under test
    finally:
        await store.close()


@pytest.mark.parametrize(("required", "outcome"), [("1", "Failed"), ("", "Skipped")])
def test_missing_postgresql_binaries_skip_or_fail_when_required(
        monkeypatch: pytest.MonkeyPatch, required: str, outcome: str) -> None:
    """No /usr/lib/postgresql/*/bin/initdb: skipped locally, a failure under
    TOCSIN_REQUIRE_SERVICES=1 (CI can never go green by skipping the PostgreSQL runs)."""
    import tests.services.postgres as pg

    monkeypatch.setattr(pg, "_SERVER", None)  # the live cluster is restored after the test
    monkeypatch.setattr(pg, "_FAILED", None)
    monkeypatch.setattr(pg, "_bin_dir", lambda: None)
    monkeypatch.setenv("TOCSIN_REQUIRE_SERVICES", required)
    with pytest.raises(BaseException) as caught:
        pg.postgres_server()
    assert type(caught.value).__name__ == outcome
    assert "apt-get install postgresql" in str(caught.value)
