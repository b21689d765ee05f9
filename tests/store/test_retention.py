"""Retention on each real store: what is old and ended goes, nothing else does."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from router.clock import FakeClock
from router.config import RetentionConfig
from router.errors import StoreUnavailable
from router.metrics import REGISTRY
from router.models import Receipt
from router.store import Store
from router.store.sqlite.codec import ts
from router.workers.retention import RetentionWorker
from tests.store.factories import T0, make_delivery, make_record
from tests.store.impls import RawDb

NOW = T0 + timedelta(days=100)
OLD = T0  # 100 days before NOW
RECENT = NOW - timedelta(days=1)


def _worker(store: Store, **config: float) -> RetentionWorker:
    settings = RetentionConfig(intake_days=7, deliveries_days=30, incidents_days=30,
                               batch_rows=3, pause_s=0).model_copy(update=config)
    return RetentionWorker(store, settings, clock=FakeClock(NOW))


@pytest.fixture
def db(store_url: str) -> RawDb:
    """The database of the ``store`` fixture (either store), for setup and counts."""
    return RawDb(store_url)


async def test_intake_only_routed_and_old_rows_go(store: Store, db: RawDb) -> None:
    """Routed rows older than intake_days are deleted (in several bounded steps);
    unrouted rows, however old, and recent routed rows stay."""
    old = [replace(make_record(instance=f"h{i}"), received_at=OLD) for i in range(10)]
    old_ids = await store.append_intake(old)
    stuck = await store.append_intake([replace(make_record(instance="stuck"), received_at=OLD)])
    recent = await store.append_intake([replace(make_record(instance="new"), received_at=RECENT)])
    await store.commit_plan(old_ids + recent, [], now=NOW, deadline_s=60)

    deleted = await _worker(store).run_pass()

    assert deleted["intake"] == 10
    ids = [row[0] for row in db.rows("SELECT id FROM intake ORDER BY id")]
    assert ids == stuck + recent


async def test_deliveries_only_ended_and_old_rows_go(store: Store, db: RawDb) -> None:
    """Sent and dead-lettered deliveries that ended before the cutoff are deleted;
    pending ones (however old) and recently ended ones stay."""
    await store.commit_plan([], [make_delivery(f"k{i}") for i in range(6)], now=OLD,
                            deadline_s=60)
    await store.mark_sent(1, OLD, Receipt())
    await store.mark_sent(2, OLD, Receipt())
    await store.mark_failed(3, OLD, "550 no such user")
    await store.mark_sent(4, RECENT, Receipt())
    # 5 and 6 stay pending.

    deleted = await _worker(store).run_pass()

    assert deleted["deliveries"] == 3
    left = [(r[0], r[1]) for r in db.rows("SELECT id, status FROM deliveries ORDER BY id")]
    assert left == [(4, "sent"), (5, "pending"), (6, "pending")]


def _insert_incident(db: RawDb, incident_id: str, *, state: str, opened: str,
                     resolved: str | None) -> None:
    db.execute(
        "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
        " audiences, decision, meta, opened_at, started_at, updated_at, resolved_at)"
        " VALUES (?, 'root', ?, '{}', ?, 'critical', '[]', '{}', '{}', ?, ?, ?, ?)",
        (incident_id, f"g-{incident_id}", state, opened, opened, opened, resolved))
    db.execute(
        "INSERT INTO incident_alerts (incident_id, fingerprint, labels, annotations,"
        " status, starts_at, generator_url, first_seen_at, last_seen_at, sender)"
        " VALUES (?, 'fp', '{}', '{}', 'resolved', ?, '', ?, ?, 'am')",
        (incident_id, opened, opened, opened))
    db.execute(
        "INSERT INTO incident_recipients (incident_id, audience, contact_id, firing,"
        " resolved, notified_at, seq, channels, announced, held)"
        " VALUES (?, 'ops', 'alice', '[]', '[]', ?, 1, '[]', TRUE, '[]')",
        (incident_id, opened))
    db.execute("INSERT INTO incident_events (incident_id, at, kind, detail)"
               " VALUES (?, ?, 'opened', '{}')", (incident_id, opened))
    db.execute("INSERT INTO storm_notices (audience, incident_id, at)"
               " VALUES ('ops', ?, ?)", (incident_id, opened))


async def test_resolved_incidents_go_with_everything_attached(store: Store,
                                                              db: RawDb) -> None:
    """Incidents resolved before the cutoff go with their alerts, notification log,
    timeline and storm notices; open and recently resolved incidents stay whole."""
    for i in range(5):
        _insert_incident(db, f"inc-old{i}", state="resolved", opened=ts(OLD),
                         resolved=ts(OLD + timedelta(hours=1)))
    _insert_incident(db, "inc-open", state="open", opened=ts(OLD), resolved=None)
    _insert_incident(db, "inc-recent", state="resolved", opened=ts(OLD),
                     resolved=ts(RECENT))

    deleted = await _worker(store).run_pass()

    assert deleted["incidents"] == 5
    for table, column in (("incidents", "id"), ("incident_alerts", "incident_id"),
                          ("incident_recipients", "incident_id"),
                          ("incident_events", "incident_id"),
                          ("storm_notices", "incident_id")):
        left = sorted(r[0] for r in db.rows(f"SELECT {column} FROM {table}"))
        assert left == ["inc-open", "inc-recent"], table


async def test_zero_days_keeps_that_history_forever(store: Store, db: RawDb) -> None:
    """An age of 0 disables retention for that kind only."""
    ids = await store.append_intake([replace(make_record(), received_at=OLD)])
    await store.commit_plan(ids, [make_delivery("k1")], now=OLD, deadline_s=60)
    await store.mark_sent(1, OLD, Receipt())

    deleted = await _worker(store, intake_days=0).run_pass()

    assert "intake" not in deleted and deleted["deliveries"] == 1
    assert db.count("SELECT count(*) FROM intake") == 1


async def test_run_prunes_at_start_and_stops(store: Store, db: RawDb) -> None:
    """The worker loop prunes once at start, then waits for the interval; stop() ends it."""
    ids = await store.append_intake([replace(make_record(), received_at=OLD)])
    await store.commit_plan(ids, [], now=OLD, deadline_s=60)
    worker = _worker(store, interval_s=3600)
    task = asyncio.create_task(worker.run())
    for _ in range(200):
        if db.count("SELECT count(*) FROM intake") == 0:
            break
        await asyncio.sleep(0.02)
    assert db.count("SELECT count(*) FROM intake") == 0
    await worker.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_a_failed_pass_does_not_end_the_worker(store: Store, db: RawDb) -> None:
    """Reproducer: a prune step that raised ended the retention loop (and with it the
    service); now the pass is logged and tried again after the back-off."""
    ids = await store.append_intake([replace(make_record(), received_at=OLD)])
    await store.commit_plan(ids, [], now=OLD, deadline_s=60)
    worker = _worker(store, interval_s=3600)
    worker._error_backoff_s = 0.01  # the first retry at once (default: a minute)
    real, calls = store.prune_step, 0

    async def flaky(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StoreUnavailable("database is locked")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    store.prune_step = flaky  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(worker.run())
    for _ in range(500):
        if db.count("SELECT count(*) FROM intake") == 0 or task.done():
            break
        await asyncio.sleep(0.02)
    assert not task.done()
    assert db.count("SELECT count(*) FROM intake") == 0
    await worker.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_dead_lettered_intake_goes_after_the_deliveries_age(store: Store,
                                                                  db: RawDb) -> None:
    """Reproducer: dead-lettered intake rows were never pruned. Rows set aside before
    deliveries_days go (in bounded steps, counted as kind="dead_intake"); rows
    dead-lettered recently, or old but never routed, stay."""
    before = REGISTRY.get_sample_value("tocsin_retention_deleted_rows_total",
                                       {"kind": "dead_intake"}) or 0.0
    # Received long ago; most set aside long ago, one only recently (e.g. replayed, then
    # dead-lettered again), interleaved with rows that were never routed.
    old = await store.append_intake(
        [replace(make_record(instance=f"d{i}"), received_at=OLD) for i in range(7)])
    stuck = await store.append_intake([replace(make_record(instance="stuck"), received_at=OLD)])
    late = await store.append_intake([replace(make_record(instance="late"), received_at=OLD)])
    await store.dead_letter_intake([(i, "ZeroDivisionError: boom") for i in old], now=OLD)
    await store.dead_letter_intake([(late[0], "KeyError: 'x'")], now=RECENT)

    deleted = await _worker(store).run_pass()  # deliveries_days=30, batch_rows=3

    assert deleted["dead_intake"] == 7
    ids = [row[0] for row in db.rows("SELECT id FROM intake ORDER BY id")]
    assert ids == stuck + late
    after = REGISTRY.get_sample_value("tocsin_retention_deleted_rows_total",
                                      {"kind": "dead_intake"})
    assert after == before + 7


async def test_dead_lettered_intake_kept_with_deliveries_days_zero(store: Store,
                                                                   db: RawDb) -> None:
    """deliveries_days 0 keeps dead-lettered intake rows forever, like dead-lettered
    deliveries; intake_days does not apply to them."""
    ids = await store.append_intake([replace(make_record(), received_at=OLD)])
    await store.dead_letter_intake([(ids[0], "ValueError: bad")], now=OLD)

    deleted = await _worker(store, deliveries_days=0, intake_days=1).run_pass()

    assert "dead_intake" not in deleted and deleted["intake"] == 0
    assert db.count("SELECT count(*) FROM intake") == 1
