"""The embedded SQLite store (the default).

Writes go through one :class:`~router.store.sqlite.writer.SqliteWriter` thread with group
commit; reads use a second, read-only connection in its own thread so that listing the
history never waits behind a write batch (WAL lets readers and the writer run together).
An in-memory database has a single connection, so its reads go through the writer.

Durability: ``synchronous=FULL`` (default) fsyncs the WAL at every commit, so an
acknowledged write survives process crash *and* power loss / kernel panic.
``synchronous=NORMAL`` in WAL mode survives a process crash (SIGKILL) but the last
commits may roll back on power loss; choose it with ``?synchronous=normal`` in the URL
when that trade is acceptable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, get_args

from router.bytecache import ENTRY_OVERHEAD, PAIR_OVERHEAD, ByteLRU, labels_bytes
from router.errors import ConflictError, InternalError, StoreClosedError, StoreError
from router.incidents.acks import AckChange
from router.incidents.engine import AlertEvent
from router.incidents.flush import FlushResult, PlannedNotice
from router.metrics import DEAD_LETTERS, PLANNED_DELIVERIES
from router.models import Delivery, IntakeRecord, NewDelivery, Phase, Receipt, RouteDecision
from router.rules.inhibit import TargetKey
from router.store.base import (
    COUNT_KEYS,
    AckRequest,
    Backlog,
    ForgetReport,
    InstanceInfo,
    OptOut,
    PushSubscription,
    StageBacklog,
)
from router.store.sqlite import acks as ack_store
from router.store.sqlite import incidents as incident_store
from router.store.sqlite.batcher import WriterBatcher
from router.store.sqlite.codec import (
    alert_to_json,
    delivery_from_row,
    intake_from_row,
    meta_to_json,
    parse_ts,
    ts,
)
from router.store.sqlite.inbound import forget_inbound, remember_inbound
from router.store.sqlite.incident_intake import dead_letter_intake_job, requeue_intake_job
from router.store.sqlite.incidents import (
    DueStorm,
    IncidentDetail,
    IncidentSnapshot,
    IncidentSummary,
    InsertDeliveries,
    SourceUpdate,
)
from router.store.sqlite.instances import heartbeat_job, instances_query
from router.store.sqlite.lanes import LaneSlots, claim_sql
from router.store.sqlite.migrate import migrate
from router.store.sqlite.outcomes import (
    activate_fallbacks,
    defer_delivery,
    fail_delivery,
    plan_fallbacks,
    requeue_failed,
    sent_delivery,
)
from router.store.sqlite.privacy import forget_contact_job
from router.store.sqlite.retention import Prunable, PruneStep, prune_step
from router.store.sqlite.subscriptions import (
    delete_subscription,
    delete_subscription_by_endpoint,
    list_subscriptions,
    upsert_subscription,
)
from router.store.sqlite.writer import SqliteWriter, store_error

__all__ = ["SYNCHRONOUS_MODES", "SqliteStore"]

T = TypeVar("T")

SYNCHRONOUS_MODES = frozenset({"FULL", "NORMAL", "EXTRA"})
_STATUSES = frozenset({"pending", "sent", "failed", "cancelled"})
#: The delivery phases (the ``deliveries.phase`` CHECK of migration 0010).
DELIVERY_PHASES = frozenset(get_args(Phase))

#: (source, received_at, fingerprint, alert JSON, meta JSON)
_IntakeRow = tuple[str, str, str, str, str]
#: Accepted records kept in memory until routed, so that the intake processor need not
#: decode again what the webhook just parsed (a miss reads the row: nothing depends on it).
_FRESH_MAX = 10_000


def _record_bytes(_intake_id: int, record: IntakeRecord) -> int:
    """What a kept record holds: its labels, annotations, URL and meta."""
    alert = record.alert
    return (labels_bytes(alert.labels) + labels_bytes(alert.annotations)
            + labels_bytes(record.meta) + len(alert.generator_url) + 4 * ENTRY_OVERHEAD)


def _row_bytes(row: _IntakeRow, record: IntakeRecord) -> int:
    """:func:`_record_bytes` from the row already encoded (its JSON holds the strings)."""
    alert = record.alert
    pairs = len(alert.labels) + len(alert.annotations) + len(record.meta)
    return len(row[3]) + len(row[4]) + pairs * PAIR_OVERHEAD + 4 * ENTRY_OVERHEAD

_INSERT_INTAKE = (
    "INSERT INTO intake (source, received_at, fingerprint, alert, meta) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text, html,"
    " status, attempts, created_at, updated_at, next_attempt_at, deadline_at, last_error,"
    " dead_letter_reason)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_INSERT_PLANNED_DELIVERY = (  # the same row, and the end of the quiet hours that hold it
    _INSERT_DELIVERY.replace(" dead_letter_reason)", " dead_letter_reason, deferred_until)")
    .replace("?, ?)", "?, ?, ?)", 1)
)
_UPSERT_POSITION = (
    "INSERT INTO stream_positions (stream, topic, partition, next_offset, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream, topic, partition) DO UPDATE SET"
    " next_offset = excluded.next_offset, updated_at = excluded.updated_at"
)

# ``RETURNING`` gives no order: the callers sort (ids grow in intake order).
_CLAIM_INTAKE = (
    "UPDATE intake SET claimed_by = ?, lease_until = ? WHERE id IN (SELECT id FROM intake"
    " WHERE processed_at IS NULL AND dead_at IS NULL AND id > ?"
    " AND (lease_until IS NULL OR lease_until <= ? OR claimed_by = ?) ORDER BY id LIMIT ?)"
    " RETURNING id"
)
_CLAIM_INCIDENTS = (
    "UPDATE incidents SET claimed_by = ?, lease_until = ? WHERE rowid IN (SELECT rowid"
    " FROM incidents WHERE due_at IS NOT NULL AND due_at <= ?"
    " AND (lease_until IS NULL OR lease_until <= ? OR claimed_by = ?)"
    " ORDER BY due_at, rowid LIMIT ?) RETURNING id, due_at, rowid"
)

#: Rows per multi-row INSERT: one statement text (and prepared statement) per size.
_ROWS_PER_INSERT = 32
_INSERT_INTAKE_SQL = [
    _INSERT_INTAKE + ", (?, ?, ?, ?, ?)" * (n - 1) for n in range(1, _ROWS_PER_INSERT + 1)
]


def _insert_intake_rows(
    conn: sqlite3.Connection, items: Sequence[tuple[_IntakeRow, IntakeRecord]]
) -> list[int]:
    """Writer job of the intake batcher: insert the rows, return their ids in order.

    One statement per ``_ROWS_PER_INSERT`` rows rather than ``executemany`` (one step, so
    one GIL release and re-acquisition, per row). One writer, inside one transaction: the
    AUTOINCREMENT ids of a statement are consecutive and end at its ``lastrowid``.
    """
    ids: list[int] = []
    for start in range(0, len(items), _ROWS_PER_INSERT):
        chunk = items[start:start + _ROWS_PER_INSERT]
        params = [value for row, _ in chunk for value in row]
        last = conn.execute(_INSERT_INTAKE_SQL[len(chunk) - 1], params).lastrowid
        if last is None:  # pragma: no cover — SQLite sets it after every INSERT
            raise InternalError("INSERT INTO intake returned no rowid")
        ids.extend(range(last - len(chunk) + 1, last + 1))
    return ids


class SqliteStore:
    """:class:`~router.store.base.Store` on SQLite (WAL, one writer thread)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        max_batch: int = 1000,
        release_leases_on_start: bool = True,
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        self._path = path
        self._memory = path == ":memory:"
        self._synchronous = mode
        self._release_leases = release_leases_on_start
        self._writer = SqliteWriter(self._connect, on_open=self._on_open, max_batch=max_batch)
        self._intake_batcher: WriterBatcher[tuple[_IntakeRow, IntakeRecord], int] = (
            WriterBatcher(self._writer, _insert_intake_rows, on_committed=self._committed)
        )
        # Committed, not yet fetched: bounded in entries and in bytes (memory.cache_bytes).
        self._fresh: ByteLRU[int, IntakeRecord] = ByteLRU(_record_bytes, share="intake")
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        self._read_conn: sqlite3.Connection | None = None
        self._started = False

    # -- lifecycle --------------------------------------------------------------------

    @property
    def commits(self) -> int:
        """Write transactions committed so far (tests observe group commit with it)."""
        return self._writer.commits

    async def start(self) -> None:
        """Create the parent folder, open, migrate, start the writer (and reader)."""
        if self._started:
            return
        if not self._memory:
            await asyncio.to_thread(Path(self._path).parent.mkdir, parents=True, exist_ok=True)
        await self._writer.start()
        if not self._memory:
            self._reader = concurrent.futures.ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="tocsin-store-reader",
                initializer=self._open_reader,
            )
        self._started = True

    async def close(self) -> None:
        """Flush queued writes, close both connections. Idempotent."""
        await self._intake_batcher.drain()
        await self._writer.close()
        reader = self._reader
        if reader is not None:
            self._reader = None
            await asyncio.get_running_loop().run_in_executor(reader, self._close_reader)
            await asyncio.to_thread(reader.shutdown, True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        # A fan-out writes 100,000 rows into indexes keyed by random hashes (idempotency
        # keys): with SQLite's default 2 MiB page cache most inserts miss it. 64 MiB at
        # most, allocated only as pages are used.
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    def _on_open(self, conn: sqlite3.Connection) -> None:
        migrate(conn)
        if self._release_leases:
            # The embedded store has one process by design: a lease found at start was
            # held by a process that died mid-send. Make those rows due now (at their
            # claim time) instead of waiting for the lease to run out: the interrupted
            # send is retried once, right after the restart.
            conn.execute(
                "UPDATE deliveries SET next_attempt_at = updated_at, lease_until = NULL"
                " WHERE status = 'pending' AND lease_until IS NOT NULL"
            )
            # Likewise the claims on intake rows and due incidents: free them now.
            conn.execute(
                "UPDATE intake SET claimed_by = NULL, lease_until = NULL"
                " WHERE processed_at IS NULL AND dead_at IS NULL AND claimed_by IS NOT NULL")
            conn.execute(
                "UPDATE incidents SET claimed_by = NULL, lease_until = NULL"
                " WHERE due_at IS NOT NULL AND claimed_by IS NOT NULL")

    def _open_reader(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA query_only=1")
        self._read_conn = conn

    def _close_reader(self) -> None:
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        reader = self._reader
        if reader is None:
            if not self._started:
                raise StoreClosedError("store is not started")
            return await self._writer.submit(fn)

        def run() -> T:
            assert self._read_conn is not None
            try:
                return fn(self._read_conn)
            except sqlite3.Error as exc:  # the writer's jobs fail the same way
                failure = store_error(exc)
                if failure is exc:
                    raise
                raise failure from exc

        return await asyncio.get_running_loop().run_in_executor(reader, run)

    # -- intake -----------------------------------------------------------------------

    async def append_intake(self, records: Sequence[IntakeRecord]) -> list[int]:
        """Persist accepted alerts; returns their ids after the group COMMIT.

        Concurrent callers are coalesced (:class:`WriterBatcher`) into one writer job per
        transaction, which inserts their rows with multi-row INSERTs.
        """
        if not records:
            return []
        items = [
            ((r.source, ts(r.received_at), r.alert.fingerprint, alert_to_json(r.alert),
              meta_to_json(r.meta)), r)
            for r in records
        ]
        return await self._intake_batcher.submit(items)

    def _committed(
        self, items: list[tuple[_IntakeRow, IntakeRecord]], ids: Sequence[int]
    ) -> None:
        self._remember(ids, [record for _, record in items],
                       [_row_bytes(row, record) for row, record in items])

    def _remember(self, ids: Sequence[int], records: Sequence[IntakeRecord],
                  costs: Sequence[int]) -> None:
        """Keep committed records for :meth:`fetch_intake`, up to the bound.

        Beyond it the newest are not kept (read from disk when their turn comes): rows are
        routed oldest first, so dropping the oldest would evict exactly the rows needed
        next, and a sustained backlog would miss on every row.
        """
        fresh = self._fresh
        for intake_id, record, cost in zip(ids, records, costs, strict=True):
            if (len(fresh) >= _FRESH_MAX
                    or not fresh.put(intake_id, record, evict=False, cost=cost)):
                return

    async def append_intake_at(
        self,
        records: Sequence[IntakeRecord],
        positions: Mapping[tuple[str, str, int], int],
    ) -> list[int]:
        """Persist alerts and the stream positions they cover in one group COMMIT."""
        rows = [
            (r.source, ts(r.received_at), r.alert.fingerprint, alert_to_json(r.alert),
             meta_to_json(r.meta))
            for r in records
        ]
        now = ts(datetime.now(UTC))
        marks = [(s, t, p, offset, now) for (s, t, p), offset in positions.items()]

        def job(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            if rows:
                conn.executemany(_INSERT_INTAKE, rows)
                # One writer, one statement: consecutive ids ending at last_insert_rowid().
                last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
                ids = list(range(last - len(rows) + 1, last + 1))
            conn.executemany(_UPSERT_POSITION, marks)
            return ids

        ids = await self._writer.submit(job)
        self._remember(ids, records, [_row_bytes(row, record)
                                      for row, record in zip(rows, records, strict=True)])
        return ids

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Retention: delete one bounded step of ``kind`` older than ``cutoff``."""
        text = ts(cutoff)
        return await self._writer.submit(
            lambda conn: prune_step(conn, kind, text, cursor, chunk))

    async def stream_positions(self, stream: str) -> dict[tuple[str, int], int]:
        """Next offsets per (topic, partition) recorded for ``stream``."""

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                "SELECT topic, partition, next_offset FROM stream_positions WHERE stream = ?",
                (stream,),
            ).fetchall()

        return {(row[0], int(row[1])): int(row[2]) for row in await self._read(query)}

    async def fetch_intake(
        self, limit: int, *, after_id: int = 0
    ) -> list[tuple[int, IntakeRecord]]:
        """Unprocessed intake rows with an id above ``after_id``, oldest first.

        The ids come from the database; records this process committed are taken from
        memory, the others (written before a restart, or dropped from the bounded
        memory) are read and decoded. ``after_id`` lets the intake processor fetch the
        next batch while the previous one is still being committed.
        """

        def pending(conn: sqlite3.Connection) -> list[int]:
            return [int(row[0]) for row in conn.execute(
                "SELECT id FROM intake WHERE processed_at IS NULL AND dead_at IS NULL"
                " AND id > ?"
                " ORDER BY id LIMIT ?",
                (after_id, limit),
            )]

        return await self._records(await self._read(pending))

    async def claim_intake(
        self, limit: int, *, owner: str, now: datetime, lease_s: float, after_id: int = 0,
    ) -> list[tuple[int, IntakeRecord]]:
        """Lease up to ``limit`` unprocessed intake rows above ``after_id``, oldest first.

        A row is free when unclaimed, when its lease ran out at ``now``, or when
        ``owner`` holds it already (a batch fetched again after a failed commit).
        """
        params = (owner, ts(now + timedelta(seconds=lease_s)), after_id, ts(now), owner, limit)

        def job(conn: sqlite3.Connection) -> list[int]:
            return sorted(int(row[0]) for row in conn.execute(_CLAIM_INTAKE, params))

        return await self._records(await self._writer.submit(job))

    async def _records(self, ids: list[int]) -> list[tuple[int, IntakeRecord]]:
        """The intake records of ``ids``, in that order (from memory when fresh)."""
        fresh = self._fresh
        found: dict[int, IntakeRecord] = {}
        for i in ids:  # taken now: the bound may evict
            record = fresh.peek(i)
            if record is not None:
                found[i] = record
        missing = [i for i in ids if i not in found]
        if missing:

            def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
                return conn.execute(
                    "SELECT id, source, received_at, alert, meta FROM intake"
                    " WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(missing),),
                ).fetchall()

            found.update(intake_from_row(row) for row in await self._read(query))
        return [(i, found[i]) for i in ids]

    async def commit_plan(
        self,
        intake_ids: Sequence[int],
        deliveries: Sequence[NewDelivery],
        *,
        now: datetime,
        deadline_s: float,
    ) -> int:
        """Insert deliveries (duplicate keys ignored) and mark intake processed, atomically."""
        now_s = ts(now)
        deadline = ts(now + timedelta(seconds=deadline_s))
        rows = [_delivery_params(d, now_s, deadline) for d in deliveries]
        processed = [(now_s, intake_id) for intake_id in intake_ids]

        def job(conn: sqlite3.Connection) -> list[int]:
            inserted: list[int] = []
            for index, row in enumerate(rows):
                cursor = conn.execute(_INSERT_DELIVERY, row)
                if cursor.rowcount == 1:
                    inserted.append(index)
                    if deliveries[index].fallback is not None:
                        plan_fallbacks(conn, [deliveries[index]])
                        if deliveries[index].failed_reason is not None:  # e.g. render failed
                            assert cursor.lastrowid is not None
                            activate_fallbacks(conn, cursor.lastrowid, now)
            conn.executemany(
                "UPDATE intake SET processed_at = ? WHERE id = ? AND processed_at IS NULL",
                processed,
            )
            return inserted

        inserted = await self._writer.submit(job)
        for intake_id in intake_ids:
            self._fresh.pop(intake_id)
        _count_planned(deliveries[index] for index in inserted)
        return len(inserted)

    # -- outbox -----------------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries of any channel (counts one attempt
        each), the most severe first, then the oldest due."""
        return await self.claim_lanes(now, LaneSlots(other=limit), lease_s)

    async def claim_lanes(self, now: datetime, slots: LaneSlots,
                          lease_s: float) -> list[Delivery]:
        """Lease due pending deliveries, at most ``slots`` of each channel lane (counts
        one attempt each); within a lane the most severe first, then the oldest due."""
        statement = claim_sql(slots, ts(now), ts(now + timedelta(seconds=lease_s)))
        if statement is None:
            return []
        sql, params = statement

        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, params).fetchall()

        claimed = [delivery_from_row(row) for row in await self._writer.submit(job)]
        claimed.sort(key=lambda d: d.id)
        return claimed

    async def mark_sent(self, delivery_id: int, at: datetime, receipt: Receipt) -> None:
        """pending → sent, with the provider's id and SMS parts; planned fallbacks dropped."""

        def job(conn: sqlite3.Connection) -> None:
            sent_delivery(conn, delivery_id, at, receipt.provider_id, receipt.segments)

        await self._writer.submit(job)

    async def mark_retry(
        self,
        delivery_id: int,
        next_attempt_at: datetime,
        error: str,
        *,
        at: datetime | None = None,
    ) -> None:
        """Stay pending, release the lease, due again at ``next_attempt_at``."""
        updated = ts(at if at is not None else datetime.now(UTC))
        await self._update(
            "UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL, last_error = ?,"
            " updated_at = ? WHERE id = ? AND status = 'pending'",
            (ts(next_attempt_at), error, updated, delivery_id),
        )

    async def mark_failed(self, delivery_id: int, at: datetime, error: str, *,
                          reason: str = "permanent") -> list[int]:
        """pending → failed (dead letter, with ``reason``) and, in the same transaction,
        its planned fallbacks inserted as pending deliveries; returns their ids."""

        def job(conn: sqlite3.Connection) -> list[int]:
            return fail_delivery(conn, delivery_id, at, error, reason)

        return await self._writer.submit(job)

    async def defer(self, delivery_id: int, next_attempt_at: datetime) -> None:
        """Hand a claimed delivery back unsent (rate limit); its attempt is not counted."""

        def job(conn: sqlite3.Connection) -> None:
            defer_delivery(conn, delivery_id, next_attempt_at)

        await self._writer.submit(job)

    async def requeue_failed(self, ids: Sequence[int] | None, *, now: datetime,
                             deadline_s: float) -> list[int]:
        """Replay dead letters (all of them when ``ids`` is None); return the ids."""

        def job(conn: sqlite3.Connection) -> list[int]:
            return requeue_failed(conn, ids, now, deadline_s)

        return await self._writer.submit(job)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by id, or None."""

        def query(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            return row

        row = await self._read(query)
        return None if row is None else delivery_from_row(row)

    # -- push subscriptions -------------------------------------------------------------

    async def add_push_subscription(self, contact_id: str, endpoint: str, p256dh: str,
                                    auth: str, *, now: datetime) -> PushSubscription:
        """Store a contact's browser subscription (or replace its keys: same contact and
        endpoint); the endpoint's other contacts keep theirs."""

        def job(conn: sqlite3.Connection) -> PushSubscription:
            return upsert_subscription(conn, contact_id, endpoint, p256dh, auth, now)

        return await self._writer.submit(job)

    async def push_subscriptions(self, contact_id: str | None = None) -> list[PushSubscription]:
        """Subscriptions of one contact (or all), oldest first."""
        return await self._read(lambda conn: list_subscriptions(conn, contact_id))

    async def delete_push_subscription(self, subscription_id: int) -> bool:
        """Remove a subscription by id; True when it existed."""
        return await self._writer.submit(
            lambda conn: delete_subscription(conn, subscription_id))

    async def delete_push_endpoint(self, endpoint: str) -> bool:
        """Remove every subscription of ``endpoint`` (gone at the push service)."""
        return await self._writer.submit(
            lambda conn: delete_subscription_by_endpoint(conn, endpoint))

    # -- privacy (router/store/sqlite/privacy.py) ----------------------------------------

    async def forget_contact(self, contact_id: str, *, at: datetime,
                             phones: Sequence[str] = ()) -> ForgetReport:
        """Erase a contact's personal data in one transaction; the history kept masked."""
        return await self._writer.submit(
            lambda conn: forget_contact_job(conn, contact_id, at, tuple(phones)))

    # -- inbound messages (router/store/sqlite/inbound.py) -------------------------------

    async def remember_inbound(self, kind: str, message_id: str, at: datetime, *,
                               forget_before: datetime | None = None) -> bool:
        """Record an inbound message id; True when new (a duplicate: False)."""
        return await self._writer.submit(
            lambda conn: remember_inbound(conn, kind, message_id, at, forget_before))

    async def forget_inbound(self, kind: str, message_id: str) -> None:
        """Forget an inbound message id (its handling failed: the retry must act)."""
        await self._writer.submit(lambda conn: forget_inbound(conn, kind, message_id))

    async def _update(self, sql: str, params: tuple[object, ...]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._writer.submit(job)

    # -- incidents (router/store/sqlite/incidents.py) ----------------------------------------

    async def commit_intake(
        self, intake_ids: Sequence[int], events: Sequence[AlertEvent],
        sources: Sequence[SourceUpdate], *, now: datetime,
        dead: Sequence[tuple[int, str]] = (),
    ) -> datetime | None:
        """Apply alerts to incidents and mark intake rows processed, in one transaction;
        ``dead`` rows (routing raised) are dead-lettered in it instead."""
        ids, evs, srcs, gone = list(intake_ids), list(events), list(sources), list(dead)
        earliest = await self._writer.submit(
            lambda conn: incident_store.apply_intake_job(conn, ids, evs, srcs, now, gone))
        for intake_id in ids:
            self._fresh.pop(intake_id)
        for intake_id, _ in gone:
            self._fresh.pop(intake_id)
        return earliest

    async def dead_letter_intake(self, dead: Sequence[tuple[int, str]], *,
                                 now: datetime) -> None:
        """Set intake rows aside, ``(id, reason)``: dead-lettered, not processed."""
        gone = list(dead)
        await self._writer.submit(lambda conn: dead_letter_intake_job(conn, gone, now))
        for intake_id, _ in gone:
            self._fresh.pop(intake_id)

    async def requeue_intake(self, ids: Sequence[int] | None) -> list[int]:
        """Replay dead-lettered intake rows (all when ``ids`` is None); return their ids."""
        chosen = None if ids is None else list(ids)
        return await self._writer.submit(lambda conn: requeue_intake_job(conn, chosen))

    async def list_intake(self, *, status: str = "dead", limit: int = 100,
                          offset: int = 0) -> list[dict[str, object]]:
        """Intake rows by status (``dead`` only), newest first."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        return await self._read(lambda conn: incident_store.list_intake_query(
            conn, status=status, limit=limit, offset=offset))

    async def quarantine_incident(
        self, incident_id: str, *, now: datetime, reason: str, error: str,
        base_s: float, cap_s: float,
    ) -> tuple[int, datetime] | None:
        """A flush raised: back off the incident's timer, note why on its timeline."""
        return await self._writer.submit(lambda conn: incident_store.quarantine_job(
            conn, incident_id, now, reason, error, base_s, cap_s))

    async def postpone_storm(self, storm_id: int, until: datetime) -> None:
        """A storm summary failed to plan: due again at ``until``."""
        await self._writer.submit(
            lambda conn: incident_store.postpone_storm_job(conn, storm_id, until))

    async def upgrade_legacy_incidents(
            self, identity: Callable[[str, RouteDecision], str | None]) -> int:
        """Re-key the open incidents opened under a route position (upgrade to route ids)."""
        return await self._writer.submit(
            lambda conn: incident_store.upgrade_legacy_job(conn, identity))

    async def due_incidents(self, now: datetime, limit: int) -> list[str]:
        """Incidents whose timer is due, earliest first."""
        return await self._read(lambda conn: incident_store.due_incidents_query(conn, now, limit))

    async def claim_due_incidents(self, now: datetime, limit: int, *, owner: str,
                                  lease_s: float) -> list[str]:
        """Lease up to ``limit`` incidents due at ``now``, earliest first.

        Free as for :meth:`claim_intake`: unclaimed, lease run out, or held by ``owner``.
        A flush that commits (or a quarantine) releases the claim."""
        params = (owner, ts(now + timedelta(seconds=lease_s)), ts(now), ts(now), owner, limit)

        def job(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(_CLAIM_INCIDENTS, params).fetchall()
            return [str(row[0]) for row in sorted(rows, key=lambda r: (r[1], r[2]))]

        return await self._writer.submit(job)

    async def next_incident_due(self) -> datetime | None:
        """The earliest incident timer."""
        return await self._read(incident_store.next_due_query)

    async def load_incident(
        self, incident_id: str, now: datetime,
        target_keys: Callable[[Mapping[str, str]], list[TargetKey]],
        storm_window_s: float | None,
    ) -> IncidentSnapshot | None:
        """Everything a flush reads, from one read transaction."""

        def query(conn: sqlite3.Connection) -> IncidentSnapshot | None:
            conn.execute("BEGIN")  # one consistent snapshot of the WAL
            try:
                return incident_store.load_snapshot_query(conn, incident_id, now, target_keys,
                                                          storm_window_s)
            finally:
                conn.execute("COMMIT")

        if self._reader is None:
            return await self._writer.submit(
                lambda conn: incident_store.load_snapshot_query(conn, incident_id, now,
                                                                target_keys, storm_window_s))
        return await self._read(query)

    def _delivery_inserter(self, now: datetime, deadline_s: float) -> InsertDeliveries:
        now_s = ts(now)
        deadline = ts(now + timedelta(seconds=deadline_s))
        return lambda conn, notices: insert_planned(conn, notices, now_s, deadline,
                                                    deadline_s, now)

    async def commit_flush(
        self, snapshot: IncidentSnapshot, result: FlushResult, *, now: datetime,
        deadline_s: float, storm_window_s: float | None = None,
        claim: incident_store.FlushClaim | None = None,
    ) -> list[Delivery] | None:
        """Apply a flush if the incident did not change since ``snapshot``.

        With ``claim``, lease due deliveries in the same transaction (per lane, as
        :meth:`claim_lanes`) and return them; None when the flush conflicted."""
        insert = self._delivery_inserter(now, deadline_s)
        statement = None if claim is None else claim_sql(
            claim.slots, ts(claim.at), ts(claim.at + timedelta(seconds=claim.lease_s)))

        def job(conn: sqlite3.Connection) -> tuple[_PlannedCounts, list[sqlite3.Row]] | None:
            inserted = incident_store.commit_flush_job(conn, snapshot, result, now,
                                                       deadline_s, insert, storm_window_s)
            if inserted is None:
                return None
            claimed = [] if statement is None else conn.execute(*statement).fetchall()
            # Counted in the writer's thread: the loop gets a few numbers, not the rows.
            return _planned_counts(inserted), claimed

        try:
            done = await self._writer.submit(job)
        except ConflictError:  # a queued first notice was claimed meanwhile: rolled back
            return None
        if done is None:
            return None
        counts, rows = done
        _count_planned(counts)
        return sorted((delivery_from_row(row) for row in rows), key=lambda d: d.id)

    async def due_storms(self, now: datetime) -> list[DueStorm]:
        """Storm summaries due now."""
        return await self._read(lambda conn: incident_store.due_storms_query(conn, now))

    async def commit_storm(self, storm_id: int, notices: Sequence[PlannedNotice], *,
                           now: datetime, deadline_s: float) -> int:
        """Insert a storm summary's deliveries and mark it sent; return how many."""
        insert = self._delivery_inserter(now, deadline_s)
        inserted = await self._writer.submit(
            lambda conn: incident_store.commit_storm_job(conn, storm_id, notices, now,
                                                         deadline_s, insert))
        _count_planned(inserted)
        return len(inserted)

    async def list_incidents(
        self, *, state: str | None = None, route: str | None = None,
        audience: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[IncidentSummary]:
        """Incidents, newest first, filtered by state, route id and audience."""
        return await self._read(lambda conn: incident_store.list_incidents_query(
            conn, state=state, route=route, audience=audience, limit=limit, offset=offset))

    async def get_incident(self, incident_id: str) -> IncidentDetail | None:
        """One incident with its alerts, timeline and deliveries."""
        return await self._read(lambda conn: incident_store.get_incident_query(conn, incident_id))

    # -- acknowledgements (router/store/sqlite/acks.py) ------------------------------

    async def acknowledge_incident(self, incident_id: str, version: int, change: AckChange,
                                   *, now: datetime) -> bool:
        """Apply an answer under the incident's version; False on a conflict."""
        return await self._writer.submit(
            lambda conn: ack_store.acknowledge_job(conn, incident_id, version, change, now))

    async def pending_acks(self, contact_ids: Sequence[str]) -> list[AckRequest]:
        """Open incidents waiting for one of ``contact_ids``' answer, oldest first."""
        ids = list(contact_ids)
        return await self._read(lambda conn: ack_store.pending_acks_query(conn, ids))

    async def record_opt_out(self, phone: str, keyword: str, *, at: datetime) -> None:
        """Record an SMS opt-out of ``phone``."""
        await self._writer.submit(
            lambda conn: ack_store.record_opt_out_job(conn, phone, keyword, at))

    async def opt_outs(self, phone: str | None = None, *, limit: int = 100) -> list[OptOut]:
        """SMS opt-outs, newest first."""
        return await self._read(lambda conn: ack_store.opt_outs_query(conn, phone, limit))

    # -- reads ------------------------------------------------------------------------

    async def list_deliveries(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0,
        incident: str | None = None, phase: str | None = None,
    ) -> list[Delivery]:
        """Newest first; ``status`` in pending|sent|failed|cancelled or None for all;
        ``incident``: its ``incident_key``; ``phase``: one of the delivery phases."""
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown delivery status {status!r}")
        if phase is not None and phase not in DELIVERY_PHASES:
            raise ValueError(f"unknown delivery phase {phase!r}")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        where: list[str] = []
        params: list[object] = []
        for column, value in (("status", status), ("incident_key", incident),
                              ("phase", phase)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM deliveries" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id DESC LIMIT ? OFFSET ?"

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(sql, (*params, limit, offset)).fetchall()

        return [delivery_from_row(row) for row in await self._read(query)]

    async def counts(self, now: datetime | None = None) -> dict[str, int]:
        """Unrouted intake rows; pending, due and failed deliveries (indexed counts)."""
        at = ts(now if now is not None else datetime.now(UTC))

        def query(conn: sqlite3.Connection) -> dict[str, int]:
            # Each count walks a (partial) index over its own rows only: the cost follows
            # the backlog, not the history (sent rows are never visited).
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM intake WHERE processed_at IS NULL"
                "  AND dead_at IS NULL),"
                " (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'),"
                " (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"
                "  AND next_attempt_at <= ?),"
                " (SELECT COUNT(*) FROM deliveries WHERE status = 'failed')", (at,)
            ).fetchone()
            return dict(zip(COUNT_KEYS, (int(v) for v in row), strict=True))

        return await self._read(query)

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog:
        """Per stage: items due and not done, and the oldest one's due time (indexed)."""
        at = ts(now)
        cutoff = ts(now - timedelta(seconds=overdue_grace_s))

        def query(conn: sqlite3.Connection) -> Backlog:
            # Each part walks a partial index (intake_unprocessed, incidents_due,
            # deliveries_due) over the due rows only, or reads its first entry: the cost
            # follows the backlog, not the history (nor the rows held until later).
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM intake WHERE processed_at IS NULL"
                "  AND dead_at IS NULL),"
                " (SELECT received_at FROM intake WHERE processed_at IS NULL"
                "  AND dead_at IS NULL"
                "  ORDER BY id LIMIT 1),"
                " (SELECT COUNT(*) FROM incidents WHERE due_at IS NOT NULL AND due_at <= ?),"
                " (SELECT MIN(due_at) FROM incidents WHERE due_at IS NOT NULL),"
                " (SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_due"
                "  WHERE status = 'pending' AND next_attempt_at <= ?),"
                " (SELECT MIN(next_attempt_at) FROM deliveries INDEXED BY deliveries_due"
                "  WHERE status = 'pending')",
                (cutoff, at),
            ).fetchone()
            return Backlog(
                intake=_stage(row[0], row[1]),
                incidents=_stage(row[2], row[3]),
                deliveries=_stage(row[4], row[5]),
            )

        return await self._read(query)

    async def due_by_channel(self, now: datetime) -> dict[str, int]:
        """Pending deliveries due at ``now`` (not leased), per channel: each lane's queue."""
        at = ts(now)

        def query(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT channel, COUNT(*) FROM deliveries WHERE status = 'pending'"
                " AND next_attempt_at <= ? GROUP BY channel", (at,)).fetchall()
            return {str(channel): int(count) for channel, count in rows}

        return await self._read(query)

    # -- instances (router/store/sqlite/instances.py) ---------------------------------------

    async def heartbeat(self, instance_id: str, *, version: str, rules_hash: str,
                        started_at: datetime, now: datetime) -> None:
        """Record that ``instance_id`` is alive at ``now`` with this rule set."""
        await self._writer.submit(lambda conn: heartbeat_job(
            conn, instance_id, version, rules_hash, started_at, now))

    async def instances(self, now: datetime, within_s: float) -> list[InstanceInfo]:
        """Instances heard of in the last ``within_s`` seconds, by id."""
        return await self._read(lambda conn: instances_query(conn, now, within_s))

    async def ping(self) -> bool:
        """True when a trivial query answers."""

        def query(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute("SELECT 1").fetchone()[0] == 1)

        try:
            return await self._read(query)
        except (StoreError, sqlite3.Error, RuntimeError):  # unavailable, closed, shut down
            return False


def _stage(items: int, oldest: str | None) -> StageBacklog:
    """A stage's backlog; its oldest due time only when something waits."""
    count = int(items)
    return StageBacklog(items=count, oldest=parse_ts(oldest) if count and oldest else None)


def insert_planned(conn: sqlite3.Connection, notices: Sequence[Any], now_s: str,
                   deadline: str, deadline_s: float, now: datetime) -> list[int | None]:
    """Insert planned notices (``.delivery``, ``.held_until``) in one ``executemany``;
    return their ids in order (None: the idempotency key was already there, or repeated
    in ``notices``). A notice held by quiet hours is written due at the end of the hold
    (``deferred_until``), its deadline counted from then; fallbacks are planned with
    their primary, and activated at once when the primary failed at plan time."""
    if not notices:
        return []
    keys = [n.delivery.idempotency_key for n in notices]
    taken = {row[0] for row in conn.execute(
        "SELECT idempotency_key FROM deliveries WHERE idempotency_key IN"
        " (SELECT value FROM json_each(?))", (json.dumps(keys),))}
    rows: list[tuple[object, ...]] = []
    fresh: list[bool] = []
    for key, notice in zip(keys, notices, strict=True):
        if key in taken:
            fresh.append(False)
            continue
        taken.add(key)
        fresh.append(True)
        d: NewDelivery = notice.delivery
        params = _delivery_params(d, now_s, deadline)
        held_until = notice.held_until
        if held_until is not None and d.failed_reason is None:
            held_s = ts(held_until)
            params = (*params[:17], held_s, ts(held_until + timedelta(seconds=deadline_s)),
                      *params[19:], held_s)
        else:
            params = (*params, None)
        rows.append(params)
    before = int(conn.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0])
    conn.executemany(_INSERT_PLANNED_DELIVERY, rows)
    after = int(conn.execute("SELECT coalesce(max(id), 0) FROM deliveries").fetchone()[0])
    plan_fallbacks(conn, [n.delivery for n, new in zip(notices, fresh, strict=True)
                          if new and n.delivery.fallback is not None])
    new_keys = [key for key, new in zip(keys, fresh, strict=True) if new]
    if after - before == len(new_keys):
        # One writer, no conflict left: the rows got the next ids, in order.
        ids = dict(zip(new_keys, range(before + 1, after + 1), strict=True))
    else:  # never expected; read them back
        ids = {row[0]: int(row[1]) for row in conn.execute(
            "SELECT idempotency_key, id FROM deliveries WHERE idempotency_key IN"
            " (SELECT value FROM json_each(?))", (json.dumps(new_keys),))}
    out: list[int | None] = []
    for key, notice, new in zip(keys, notices, fresh, strict=True):
        if not new:
            out.append(None)
            continue
        d = notice.delivery
        if d.failed_reason is not None and d.fallback is not None:
            activate_fallbacks(conn, ids[key], now)
        out.append(ids[key])
    return out


def _delivery_params(d: NewDelivery, now: str, deadline: str) -> tuple[object, ...]:
    failed = d.failed_reason is not None
    return (
        d.idempotency_key, d.incident_key, d.fingerprint, d.route_id, d.phase, d.channel,
        d.recipient, d.contact_id, d.audience, d.severity, d.locale, d.message.subject,
        d.message.text, d.message.html, "failed" if failed else "pending", now, now,
        None if failed else now, deadline, d.failed_reason,
        d.dead_letter_reason if failed else None,
    )


#: Deliveries written per (channel, phase), dead letters per (channel, reason).
_PlannedCounts = tuple[Counter[tuple[str, str]], Counter[tuple[str, str | None]]]


def _planned_counts(deliveries: Iterable[NewDelivery]) -> _PlannedCounts:
    planned: Counter[tuple[str, str]] = Counter()
    dead: Counter[tuple[str, str | None]] = Counter()
    for delivery in deliveries:
        planned[delivery.channel, delivery.phase] += 1
        if delivery.failed_reason is not None:
            dead[delivery.channel, delivery.dead_letter_reason] += 1
    return planned, dead


def _count_planned(deliveries: Iterable[NewDelivery] | _PlannedCounts) -> None:
    """Count deliveries written to the outbox (a plan-time failure is also a dead letter):
    one increment per label set, so a fan-out of 100,000 rows costs a few calls on the
    event loop, not 100,000."""
    planned, dead = (deliveries if isinstance(deliveries, tuple)
                     else _planned_counts(deliveries))
    for (channel, phase), n in planned.items():
        PLANNED_DELIVERIES.labels(channel=channel, phase=phase).inc(n)
    for (channel, reason), n in dead.items():
        DEAD_LETTERS.labels(channel=channel, reason=reason).inc(n)
