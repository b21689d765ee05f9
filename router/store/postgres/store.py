"""The PostgreSQL store: the same contract as SQLite, shared by several Tocsin instances.

Every operation is one transaction on a connection of a ``psycopg_pool`` pool (psycopg 3,
async). Concurrency lives in the database: claims are one ``UPDATE ... WHERE id IN
(SELECT ... FOR UPDATE SKIP LOCKED)`` with a lease, idempotency is a unique key
(``ON CONFLICT DO NOTHING``), incidents are updated under their ``version``. A write
returns once PostgreSQL committed it (``synchronous_commit`` as the server is set).

Errors: a lost or refused connection, a pool that cannot hand one out in time, or an
operational error of the server is :class:`~router.errors.StoreUnavailable` (the driver's
error as ``__cause__``: the transaction rolled back, the caller retries later); a unique
key or a serialization failure where a concurrent instance won the race is an
:class:`~router.store.base.IncidentConflict`; any other driver error is a
:class:`~router.errors.StoreError`. No psycopg exception leaves this module.

Leases are not released at start (other instances may hold them): the claims of an
instance that died come back when their lease runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar, get_args
from urllib.parse import urlsplit

import psycopg
from psycopg import AsyncConnection, IsolationLevel
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.datetime import DatetimeDumper
from psycopg_pool import AsyncConnectionPool, PoolClosed

from router.errors import ConfigError, ConflictError, StoreClosedError, StoreError, StoreUnavailable
from router.incidents.acks import AckChange
from router.incidents.engine import AlertEvent
from router.incidents.flush import FlushResult, PlannedNotice
from router.logging import get_logger
from router.metrics import DEAD_LETTERS, PLANNED_DELIVERIES
from router.models import Delivery, IntakeRecord, NewDelivery, Phase, Receipt, RouteDecision
from router.rules.inhibit import TargetKey
from router.store.base import (
    COUNT_KEYS,
    INSTANCE_FORGET_S,
    AckRequest,
    Backlog,
    DueStorm,
    FlushClaim,
    ForgetReport,
    IncidentDetail,
    IncidentSnapshot,
    IncidentSummary,
    InstanceInfo,
    LaneSlots,
    OptOut,
    Prunable,
    PruneStep,
    PushSubscription,
    SourceUpdate,
    StageBacklog,
)
from router.store.postgres import acks as ack_jobs
from router.store.postgres import inbound, outbox, privacy
from router.store.postgres import incidents as jobs
from router.store.postgres import queries as q
from router.store.postgres.codec import (
    Row,
    alert_to_json,
    delivery_from_row,
    intake_from_row,
    meta_to_json,
    utc,
)
from router.store.postgres.migrate import migrate

__all__ = ["PostgresStore"]

T = TypeVar("T")
Conn = AsyncConnection[Any]

_log = get_logger(__name__)
_STATUSES: Final = frozenset({"pending", "sent", "failed", "cancelled"})
#: The delivery phases (the ``deliveries.phase`` CHECK of migration 0003).
DELIVERY_PHASES: Final = frozenset(get_args(Phase))
#: Seconds to open a connection, and to wait for a free one of the pool.
CONNECT_TIMEOUT_S: Final = 5.0
ACQUIRE_TIMEOUT_S: Final = 5.0
#: Longest a readiness ping waits for a connection.
PING_TIMEOUT_S: Final = 1.0
#: Longest a statement may run before the server cancels it (milliseconds).
STATEMENT_TIMEOUT_MS: Final = 30_000
#: Group commit of ``append_intake``: transactions in flight at once, rows in each at most.
#: libpq settings unless the URL sets them: a bounded connect, and a dead server noticed
#: (TCP keepalives, unacknowledged data dropped after 30 s) rather than waited on forever.
_CONNECTION_DEFAULTS: Final[dict[str, object]] = {
    "connect_timeout": int(CONNECT_TIMEOUT_S), "keepalives": 1, "keepalives_idle": 10,
    "keepalives_interval": 5, "keepalives_count": 3, "tcp_user_timeout": 30_000,
    "application_name": "tocsin"}
GROUP_FLUSHES: Final = 4
GROUP_MAX_ROWS: Final = 1000


def target_of(url: str) -> str:
    """``host:port/db`` of a ``postgresql://`` URL, without user nor password (for errors)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or '/'}"


def _translate(exc: psycopg.Error, *, conflict: bool) -> StoreError:
    """What the caller gets for a driver error (module docstring).

    A data error's text is the server's primary message and the names of the table,
    column and constraint, never its DETAIL: PostgreSQL writes the failing row or key
    there ("Failing row contains (... +33612345678, ... message text ...)"), which would
    carry a contact's address and messages into logs, ``flush_error`` and the API. For
    the same reason only a connection failure keeps the driver's error as its cause."""
    failure: StoreError
    if conflict and isinstance(exc, psycopg.errors.UniqueViolation
                               | psycopg.errors.TransactionRollback):
        failure = ConflictError(f"a concurrent writer won: {_describe(exc)}")
    elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        failure = StoreUnavailable(f"PostgreSQL unavailable: {exc}".strip())
        failure.__cause__ = exc
        return failure
    else:
        failure = StoreError(f"PostgreSQL error: {_describe(exc)}")
    failure.__cause__ = None
    failure.__suppress_context__ = True
    return failure


def _describe(exc: psycopg.Error) -> str:
    """``Class: primary message (table t, column c, constraint k)``, without DETAIL."""
    diag = exc.diag
    text = diag.message_primary or (str(exc).splitlines() or [""])[0]
    where = ", ".join(f"{what} {name}" for what, name in (
        ("table", diag.table_name), ("column", diag.column_name),
        ("constraint", diag.constraint_name)) if name)
    return f"{type(exc).__name__}: {text}" + (f" ({where})" if where else "")


class _AwareDatetimeDumper(DatetimeDumper):
    """Refuses naive datetimes instead of letting the server guess their zone."""

    def upgrade(self, obj: datetime, format: Any) -> Any:
        if obj.tzinfo is None:
            raise ValueError(f"naive datetime {obj!r}: the store only takes aware datetimes")
        return super().upgrade(obj, format)


async def _configure(conn: Conn) -> None:
    """Every pooled connection: aware datetimes only."""
    conn.adapters.register_dumper(datetime, _AwareDatetimeDumper)


def _stage(items: int, oldest: datetime | None) -> StageBacklog:
    count = int(items)
    return StageBacklog(items=count, oldest=utc(oldest) if count and oldest else None)


def _count_planned(delivery: NewDelivery) -> None:
    PLANNED_DELIVERIES.labels(channel=delivery.channel, phase=delivery.phase).inc()
    if delivery.failed_reason is not None:
        DEAD_LETTERS.labels(channel=delivery.channel, reason=delivery.dead_letter_reason).inc()


class PostgresStore:
    """:class:`~router.store.base.Store` on PostgreSQL (psycopg 3 async, a pool)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 acquire_timeout_s: float = ACQUIRE_TIMEOUT_S) -> None:
        if min_size < 1 or max_size < min_size:
            raise ConfigError("state_url pool sizes: need 1 <= min_size <= max_size")
        if acquire_timeout_s <= 0:
            raise ConfigError("state_url pool_timeout_s must be > 0")
        self._acquire_timeout_s = acquire_timeout_s
        #: Migrations this instance applied at start (empty: another one did, or none due).
        self.applied_migrations: list[str] = []
        self._url = url
        self._target = target_of(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._closed = False
        self._commits = 0
        # Group commit: calls waiting for a transaction, and the tasks committing them.
        self._queue: list[tuple[Sequence[IntakeRecord], asyncio.Future[list[int]]]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    @property
    def target(self) -> str:
        """``host:port/db`` of the server (no credentials)."""
        return self._target

    @property
    def commits(self) -> int:
        """Write transactions committed so far (tests observe transactions with it)."""
        return self._commits

    # -- lifecycle --------------------------------------------------------------------

    def _connection_kwargs(self) -> dict[str, Any]:
        """Session settings: Tocsin's defaults under what the URL itself sets."""
        given = conninfo_to_dict(self._url)
        kwargs: dict[str, Any] = {"autocommit": True}
        for key, value in _CONNECTION_DEFAULTS.items():
            if key not in given:
                kwargs[key] = value
        options = f"-c TimeZone=UTC -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        kwargs["options"] = f"{options} {given['options']}" if given.get("options") else options
        return kwargs

    async def start(self) -> None:
        """Connect (failing fast when the server cannot be reached), migrate, open the pool."""
        if self._pool is not None:
            return
        if self._closed:
            raise StoreClosedError("store is closed")
        try:
            conn = await AsyncConnection.connect(self._url, **self._connection_kwargs())
        except psycopg.Error as exc:
            failure = StoreUnavailable(
                f"cannot connect to PostgreSQL at {self._target}: {exc}".strip())
            raise failure from exc
        try:
            version, applied = await migrate(conn)
        except psycopg.Error as exc:
            translated = _translate(exc, conflict=False)
            raise translated from translated.__cause__
        finally:
            await conn.close()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self._url, min_size=self._min_size, max_size=self._max_size, open=False,
            timeout=self._acquire_timeout_s, check=AsyncConnectionPool.check_connection,
            kwargs=self._connection_kwargs(), configure=_configure, name="tocsin-store")
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            await pool.close()
            failure = StoreUnavailable(
                f"cannot connect to PostgreSQL at {self._target}: {exc}".strip())
            raise failure from exc
        self._pool = pool
        self.applied_migrations = applied
        if applied:
            _log.info("state schema migrated", target=self._target, version=version,
                      applied=applied)

    async def close(self) -> None:
        """Commit the queued appends, close the pool. Idempotent."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _run(self, job: Callable[[Conn], Awaitable[T]], *, conflict: bool = False,
                   isolation: IsolationLevel | None = None, write: bool = True,
                   timeout_s: float | None = None) -> T:
        """Run ``job`` in one transaction; translate every driver error."""
        pool = self._pool
        if pool is None:
            raise StoreClosedError("store is not started" if not self._closed
                                   else "store is closed")
        try:
            async with pool.connection(timeout=timeout_s) as conn:
                if isolation is not None:
                    await conn.set_isolation_level(isolation)
                try:
                    async with conn.transaction():
                        result = await job(conn)
                    if write:
                        self._commits += 1
                    return result
                finally:
                    if isolation is not None and not conn.closed:
                        await conn.set_isolation_level(None)
        except PoolClosed as exc:
            raise StoreClosedError("store is closed") from exc
        except psycopg.Error as exc:
            translated = _translate(exc, conflict=conflict)
            raise translated from translated.__cause__

    async def _one(self, sql: Any, params: Any = None) -> tuple[Any, ...]:  # reads
        async def job(conn: Conn) -> tuple[Any, ...]:
            row = await (await conn.execute(sql, params)).fetchone()
            assert row is not None
            return tuple(row)
        return await self._run(job, write=False)

    async def _all(self, sql: Any, params: Any = None, *,
                   write: bool = False) -> list[tuple[Any, ...]]:
        async def job(conn: Conn) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await (await conn.execute(sql, params)).fetchall()]
        return await self._run(job, write=write)

    async def _dicts(self, sql: Any, params: Any = None, *, write: bool = False) -> list[Row]:
        async def job(conn: Conn) -> list[Row]:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql, params)
                return await cur.fetchall()
        return await self._run(job, write=write)

    async def _exec(self, sql: Any, params: Any = None) -> int:
        async def job(conn: Conn) -> int:
            return (await conn.execute(sql, params)).rowcount
        return await self._run(job)

    async def ping(self) -> bool:
        """True when the server answers a trivial query (within :data:`PING_TIMEOUT_S`
        for a connection: a readiness probe is not kept waiting by a lost server)."""

        async def job(conn: Conn) -> bool:
            row = await (await conn.execute(q.PING)).fetchone()
            return row is not None and row[0] == 1

        try:
            return await self._run(job, write=False,
                                   timeout_s=min(PING_TIMEOUT_S, self._acquire_timeout_s))
        except StoreError:
            return False

    async def counts(self, now: datetime | None = None) -> dict[str, int]:
        """Unrouted intake rows; pending, due and failed deliveries (indexed counts)."""
        row = await self._one(q.COUNTS, (now if now is not None else datetime.now(UTC),))
        return dict(zip(COUNT_KEYS, (int(v) for v in row), strict=True))

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog:
        """Per stage: items due and not done, and the oldest one's due time."""
        row = await self._one(q.BACKLOG, (now - timedelta(seconds=overdue_grace_s), now))
        return Backlog(intake=_stage(row[0], row[1]), incidents=_stage(row[2], row[3]),
                       deliveries=_stage(row[4], row[5]))

    # -- intake -----------------------------------------------------------------------

    @staticmethod
    def _intake_columns(records: Sequence[IntakeRecord]) -> tuple[list[Any], ...]:
        return ([r.source for r in records], [r.received_at for r in records],
                [r.alert.fingerprint for r in records],
                [alert_to_json(r.alert) for r in records], [meta_to_json(r.meta) for r in records])

    async def append_intake(self, records: Sequence[IntakeRecord]) -> list[int]:
        """Persist accepted alerts; their ids once committed.

        Group commit: calls made while transactions are in flight wait for the next one
        and share it (at most :data:`GROUP_FLUSHES` at once, :data:`GROUP_MAX_ROWS` rows
        each). A group refused for another reason than an unavailable server is retried
        call by call, so that one call's bad value fails that call alone.
        """
        if not records:
            return []
        if self._pool is None:
            raise StoreClosedError("store is not started" if not self._closed
                                   else "store is closed")
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.append((records, future))
        if len(self._flushers) < GROUP_FLUSHES:
            task = asyncio.create_task(self._flush_queue(), name="tocsin-store-intake-group")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await future

    async def _flush_queue(self) -> None:
        """Commit queued appends, one group per transaction, until the queue is empty."""
        while self._queue:
            group: list[tuple[Sequence[IntakeRecord], asyncio.Future[list[int]]]] = []
            rows = 0
            while self._queue and (not group or rows + len(self._queue[0][0]) <= GROUP_MAX_ROWS):
                call = self._queue.pop(0)
                group.append(call)
                rows += len(call[0])
            try:
                ids = await self.append_intake_at(
                    [record for records, _ in group for record in records], {})
            except asyncio.CancelledError:  # the loop is shutting down: nobody is left hanging
                for _, future in [*group, *self._queue]:
                    future.cancel()
                self._queue.clear()
                raise
            except Exception as exc:  # noqa: BLE001 — handed to every caller of the group
                if len(group) > 1 and not isinstance(exc, StoreUnavailable):
                    await self._flush_alone(group)
                    continue
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for records, future in group:
                if not future.done():  # a caller that gave up: its rows are committed anyway
                    future.set_result(ids[start:start + len(records)])
                start += len(records)

    async def _flush_alone(
            self, group: list[tuple[Sequence[IntakeRecord], asyncio.Future[list[int]]]]) -> None:
        """Commit each call of a refused group in its own transaction."""
        for records, future in group:
            try:
                ids = await self.append_intake_at(records, {})
            except Exception as exc:  # noqa: BLE001 — this call's own failure
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(ids)

    async def append_intake_at(
        self, records: Sequence[IntakeRecord],
        positions: Mapping[tuple[str, str, int], int],
    ) -> list[int]:
        """Persist alerts and the stream positions they cover in one transaction."""
        if not records and not positions:
            return []
        columns = self._intake_columns(records)
        now = datetime.now(UTC)
        marks = [(s, t, p, offset, now) for (s, t, p), offset in positions.items()]

        async def job(conn: Conn) -> list[int]:
            ids: list[int] = []
            if records:
                cur = await conn.execute(q.INSERT_INTAKE, columns)
                # Identity values are drawn in the statement's row order: sorted = input order.
                ids = sorted(int(r[0]) for r in await cur.fetchall())
            if marks:
                async with conn.cursor() as c:
                    await c.executemany(q.UPSERT_POSITION, marks)
            return ids

        return await self._run(job)

    async def stream_positions(self, stream: str) -> dict[tuple[str, int], int]:
        """Next offsets per (topic, partition) recorded for ``stream``."""
        return {(str(r[0]), int(r[1])): int(r[2])
                for r in await self._all(q.STREAM_POSITIONS, (stream,))}

    async def fetch_intake(self, limit: int, *,
                           after_id: int = 0) -> list[tuple[int, IntakeRecord]]:
        """Unprocessed intake rows with an id above ``after_id``, oldest first."""
        return [intake_from_row(r) for r in await self._dicts(q.PENDING_INTAKE,
                                                              (after_id, limit))]

    async def claim_intake(
        self, limit: int, *, owner: str, now: datetime, lease_s: float, after_id: int = 0,
    ) -> list[tuple[int, IntakeRecord]]:
        """Lease up to ``limit`` unprocessed rows above ``after_id``, oldest first
        (rows locked by another instance's claim right now are skipped)."""
        rows = await self._dicts(q.CLAIM_INTAKE, {
            "owner": owner, "lease": now + timedelta(seconds=lease_s), "after": after_id,
            "now": now, "limit": limit}, write=True)
        return sorted((intake_from_row(r) for r in rows), key=lambda item: item[0])

    async def commit_intake(
        self, intake_ids: Sequence[int], events: Sequence[AlertEvent],
        sources: Sequence[SourceUpdate], *, now: datetime,
        dead: Sequence[tuple[int, str]] = (),
    ) -> datetime | None:
        """Apply alerts to incidents and mark intake rows processed, in one transaction;
        an incident another instance changed meanwhile raises IncidentConflict."""
        ids, evs, srcs, gone = list(intake_ids), list(events), list(sources), list(dead)
        return await self._run(
            lambda conn: jobs.apply_intake(conn, ids, evs, srcs, now, gone), conflict=True)

    async def dead_letter_intake(self, dead: Sequence[tuple[int, str]], *,
                                 now: datetime) -> None:
        """Set intake rows aside, ``(id, reason)``: dead-lettered, not processed."""
        gone = list(dead)
        await self._run(lambda conn: jobs.dead_letter_intake(conn, gone, now))

    async def list_intake(self, *, status: str = "dead", limit: int = 100,
                          offset: int = 0) -> list[dict[str, object]]:
        """Intake rows by status (``dead`` only), newest first."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        if status != "dead":
            raise ValueError(f"unknown intake status {status!r} (known: dead)")
        rows = await self._run(lambda conn: jobs.list_intake(
            conn, status=status, limit=limit, offset=offset), write=False)
        return [dict(r) for r in rows]

    async def requeue_intake(self, ids: Sequence[int] | None) -> list[int]:
        """Replay dead-lettered intake rows (all when ``ids`` is None); return their ids."""
        chosen = None if ids is None else list(ids)
        return await self._run(lambda conn: jobs.requeue_intake(conn, chosen))

    async def upgrade_legacy_incidents(
            self, identity: Callable[[str, RouteDecision], str | None]) -> int:
        """Re-key the open incidents opened under a route position (upgrade to route ids)."""
        return await self._run(lambda conn: jobs.upgrade_legacy(conn, identity))

    # -- incidents --------------------------------------------------------------------

    async def claim_due_incidents(self, now: datetime, limit: int, *, owner: str,
                                  lease_s: float) -> list[str]:
        """Lease up to ``limit`` incidents due at ``now``, earliest first."""
        rows = await self._all(q.CLAIM_INCIDENTS, {
            "owner": owner, "lease": now + timedelta(seconds=lease_s), "now": now,
            "limit": limit}, write=True)
        return [str(r[0]) for r in sorted(rows, key=lambda r: (r[1], r[2]))]

    async def due_incidents(self, now: datetime, limit: int) -> list[str]:
        """Ids of incidents whose timer is due at ``now``, earliest first."""
        return [str(r[0]) for r in await self._all(q.DUE_INCIDENTS, (now, limit))]

    async def next_incident_due(self) -> datetime | None:
        """The earliest incident timer."""
        value = (await self._one(q.NEXT_DUE))[0]
        return None if value is None else utc(value)

    async def load_incident(
        self, incident_id: str, now: datetime,
        target_keys: Callable[[Mapping[str, str]], list[TargetKey]],
        storm_window_s: float | None,
    ) -> IncidentSnapshot | None:
        """Everything a flush reads, from one REPEATABLE READ snapshot."""
        return await self._run(
            lambda conn: jobs.load_snapshot(conn, incident_id, now, target_keys,
                                            storm_window_s),
            isolation=IsolationLevel.REPEATABLE_READ, write=False)

    def _inserter(self, now: datetime, deadline_s: float) -> jobs.InsertDelivery:
        deadline = now + timedelta(seconds=deadline_s)

        async def insert(conn: Conn, delivery: NewDelivery) -> int | None:
            return await outbox.insert_delivery(conn, delivery, now, deadline)

        return insert

    async def commit_flush(
        self, snapshot: IncidentSnapshot, result: FlushResult, *, now: datetime,
        deadline_s: float, storm_window_s: float | None = None,
        claim: FlushClaim | None = None,
    ) -> list[Delivery] | None:
        """Apply a flush if the incident did not change since ``snapshot`` (None if it did);
        with ``claim``, lease due deliveries in the same transaction and return them."""
        insert = self._inserter(now, deadline_s)

        async def job(conn: Conn) -> tuple[list[NewDelivery], list[Delivery]] | None:
            inserted = await jobs.commit_flush(conn, snapshot, result, now, deadline_s,
                                               insert, storm_window_s)
            if inserted is None:
                return None
            claimed = [] if claim is None else await _claim_lanes(
                conn, claim.at, claim.slots, claim.lease_s)
            return inserted, claimed

        try:
            done = await self._run(job, conflict=True)
        except ConflictError:
            return None
        if done is None:
            return None
        inserted, claimed = done
        for delivery in inserted:
            _count_planned(delivery)
        return claimed

    async def quarantine_incident(
        self, incident_id: str, *, now: datetime, reason: str, error: str,
        base_s: float, cap_s: float,
    ) -> tuple[int, datetime] | None:
        """A flush raised: back off the incident's timer, note why on its timeline."""
        return await self._run(lambda conn: jobs.quarantine(
            conn, incident_id, now, reason, error, base_s, cap_s))

    async def due_storms(self, now: datetime) -> list[DueStorm]:
        """Storm summaries due now."""
        return await self._run(lambda conn: jobs.due_storms(conn, now), write=False)

    async def commit_storm(self, storm_id: int, notices: Sequence[PlannedNotice], *,
                           now: datetime, deadline_s: float) -> int:
        """Insert a storm summary's deliveries and mark it sent; return how many."""
        insert = self._inserter(now, deadline_s)
        inserted = await self._run(lambda conn: jobs.commit_storm(
            conn, storm_id, notices, now, deadline_s, insert))
        for delivery in inserted:
            _count_planned(delivery)
        return len(inserted)

    async def postpone_storm(self, storm_id: int, until: datetime) -> None:
        """A storm summary failed to plan: due again at ``until``."""
        await self._exec(q.POSTPONE_STORM, (until, storm_id))

    async def list_incidents(
        self, *, state: str | None = None, route: str | None = None,
        audience: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[IncidentSummary]:
        """Incidents, newest first, filtered by state, route id and audience."""
        return await self._run(lambda conn: jobs.list_incidents(
            conn, state=state, route=route, audience=audience, limit=limit, offset=offset),
            write=False)

    async def get_incident(self, incident_id: str) -> IncidentDetail | None:
        """One incident with its alerts, timeline and deliveries."""
        return await self._run(lambda conn: jobs.get_incident(conn, incident_id), write=False)

    # -- outbox -----------------------------------------------------------------------

    async def commit_plan(self, intake_ids: Sequence[int], deliveries: Sequence[NewDelivery],
                          *, now: datetime, deadline_s: float) -> int:
        """Insert deliveries (duplicate keys ignored) and mark intake processed, atomically."""
        insert = self._inserter(now, deadline_s)
        planned = list(deliveries)
        ids = list(intake_ids)

        async def job(conn: Conn) -> list[NewDelivery]:
            inserted = [d for d in planned if await insert(conn, d) is not None]
            if ids:
                await conn.execute(q.MARK_PLANNED, (now, ids))
            return inserted

        inserted = await self._run(job)
        for delivery in inserted:
            _count_planned(delivery)
        return len(inserted)

    async def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries of any channel."""
        return await self.claim_lanes(now, LaneSlots(other=limit), lease_s)

    async def claim_lanes(self, now: datetime, slots: LaneSlots,
                          lease_s: float) -> list[Delivery]:
        """Lease due pending deliveries, at most ``slots`` of each channel lane."""
        if slots.total <= 0:
            return []
        return await self._run(lambda conn: _claim_lanes(conn, now, slots, lease_s))

    async def due_by_channel(self, now: datetime) -> dict[str, int]:
        """Pending deliveries due at ``now`` (not leased), per channel."""
        return {str(r[0]): int(r[1]) for r in await self._all(q.DUE_BY_CHANNEL, (now,))}

    async def mark_sent(self, delivery_id: int, at: datetime, receipt: Receipt) -> None:
        """pending → sent, with the provider's id and SMS parts; planned fallbacks dropped."""
        await self._run(lambda conn: outbox.sent_delivery(
            conn, delivery_id, at, receipt.provider_id, receipt.segments))

    async def mark_retry(self, delivery_id: int, next_attempt_at: datetime, error: str, *,
                         at: datetime | None = None) -> None:
        """Stay pending, release the lease, due again at ``next_attempt_at``."""
        await self._exec(q.MARK_RETRY, (next_attempt_at, error,
                                        at if at is not None else datetime.now(UTC),
                                        delivery_id))

    async def mark_failed(self, delivery_id: int, at: datetime, error: str, *,
                          reason: str = "permanent") -> list[int]:
        """pending → failed (dead letter) and its planned fallbacks inserted; their ids."""
        return await self._run(lambda conn: outbox.fail_delivery(
            conn, delivery_id, at, error, reason))

    async def defer(self, delivery_id: int, next_attempt_at: datetime) -> None:
        """Hand a claimed delivery back unsent (rate limit); its attempt is not counted."""
        await self._exec(q.DEFER, (next_attempt_at, delivery_id))

    async def requeue_failed(self, ids: Sequence[int] | None, *, now: datetime,
                             deadline_s: float) -> list[int]:
        """Replay dead letters (all of them when ``ids`` is None); return the ids."""
        chosen = None if ids is None else list(ids)
        return await self._run(lambda conn: outbox.requeue_failed(conn, chosen, now,
                                                                  deadline_s))

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by id, or None."""
        rows = await self._dicts(q.GET_DELIVERY, (delivery_id,))
        return delivery_from_row(rows[0]) if rows else None

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
        filters = {"status": status, "incident": incident, "phase": phase}
        params: dict[str, object] = {k: v for k, v in filters.items() if v is not None}
        sql = q.LIST_DELIVERIES[frozenset(params)]
        rows = await self._dicts(sql, {**params, "limit": limit, "offset": offset})
        return [delivery_from_row(r) for r in rows]

    # -- acknowledgements (router/store/postgres/acks.py) -----------------------------

    async def acknowledge_incident(self, incident_id: str, version: int, change: AckChange,
                                   *, now: datetime) -> bool:
        """Apply an answer under the incident's version; False on a conflict."""
        return await self._run(lambda conn: ack_jobs.acknowledge(
            conn, incident_id, version, change, now))

    async def pending_acks(self, contact_ids: Sequence[str]) -> list[AckRequest]:
        """Open incidents waiting for one of ``contact_ids``' answer, oldest first."""
        ids = list(contact_ids)
        return await self._run(lambda conn: ack_jobs.pending_acks(conn, ids), write=False)

    async def record_opt_out(self, phone: str, keyword: str, *, at: datetime) -> None:
        """Record an SMS opt-out of ``phone``."""
        await self._run(lambda conn: ack_jobs.record_opt_out(conn, phone, keyword, at))

    async def opt_outs(self, phone: str | None = None, *, limit: int = 100) -> list[OptOut]:
        """SMS opt-outs (of ``phone``, or all), newest first."""
        return await self._run(lambda conn: ack_jobs.opt_outs(conn, phone, limit),
                               write=False)

    # -- inbound messages (router/store/postgres/inbound.py) --------------------------

    async def remember_inbound(self, kind: str, message_id: str, at: datetime, *,
                               forget_before: datetime | None = None) -> bool:
        """Record an inbound message id; True when new (a duplicate: False)."""
        return await self._run(lambda conn: inbound.remember_inbound(
            conn, kind, message_id, at, forget_before))

    async def forget_inbound(self, kind: str, message_id: str) -> None:
        """Forget an inbound message id (its handling failed: the retry must act)."""
        await self._run(lambda conn: inbound.forget_inbound(conn, kind, message_id))

    # -- subscriptions ----------------------------------------------------------------

    async def add_push_subscription(self, contact_id: str, endpoint: str, p256dh: str,
                                    auth: str, *, now: datetime) -> PushSubscription:
        """Store (or replace the keys of) ``contact_id``'s subscription of ``endpoint``;
        the endpoint's other contacts keep theirs, with the new keys."""
        rows = await self._dicts(q.UPSERT_SUBSCRIPTION, (
            p256dh, auth, endpoint, contact_id,
            contact_id, endpoint, p256dh, auth, now), write=True)
        return _subscription(rows[0])

    async def push_subscriptions(self, contact_id: str | None = None) -> list[PushSubscription]:
        """Subscriptions of one contact (or all), oldest first."""
        rows = (await self._dicts(q.SUBSCRIPTIONS) if contact_id is None
                else await self._dicts(q.CONTACT_SUBSCRIPTIONS, (contact_id,)))
        return [_subscription(r) for r in rows]

    async def delete_push_subscription(self, subscription_id: int) -> bool:
        """Remove a subscription by id; True when it existed."""
        return await self._exec(q.DELETE_SUBSCRIPTION, (subscription_id,)) == 1

    async def delete_push_endpoint(self, endpoint: str) -> bool:
        """Remove every subscription of ``endpoint`` (gone at the push service), for every
        contact it was registered for."""
        return await self._exec(q.DELETE_ENDPOINT, (endpoint,)) >= 1

    # -- privacy ----------------------------------------------------------------------

    async def forget_contact(self, contact_id: str, *, at: datetime,
                             phones: Sequence[str] = ()) -> ForgetReport:
        """Erase a contact's personal data in one transaction; the history kept masked."""
        return await self._run(
            lambda conn: privacy.forget_contact(conn, contact_id, at, tuple(phones)))

    # -- retention --------------------------------------------------------------------

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Retention: delete one bounded step of ``kind`` older than ``cutoff``."""
        return await self._run(lambda conn: outbox.prune_step(conn, kind, cutoff, cursor,
                                                              chunk))

    # -- instances --------------------------------------------------------------------

    async def heartbeat(self, instance_id: str, *, version: str, rules_hash: str,
                        started_at: datetime, now: datetime) -> None:
        """Record that ``instance_id`` is alive at ``now``; forget instances gone a day."""
        async def job(conn: Conn) -> None:
            await conn.execute(q.HEARTBEAT, (instance_id, version, rules_hash, started_at,
                                             now))
            await conn.execute(q.FORGET_INSTANCES,
                               (now - timedelta(seconds=INSTANCE_FORGET_S),))
        await self._run(job)

    async def instances(self, now: datetime, within_s: float) -> list[InstanceInfo]:
        """Instances heard of in the last ``within_s`` seconds, by id."""
        rows = await self._all(q.INSTANCES_SEEN, (now - timedelta(seconds=within_s),))
        return [InstanceInfo(instance_id=r[0], version=r[1], rules_hash=r[2],
                             started_at=utc(r[3]), seen_at=utc(r[4])) for r in rows]


def _subscription(row: Row) -> PushSubscription:
    return PushSubscription(id=int(row["id"]), contact_id=row["contact_id"],
                            endpoint=row["endpoint"], p256dh=row["p256dh"], auth=row["auth"],
                            created_at=utc(row["created_at"]))


async def _claim_lanes(conn: Conn, now: datetime, slots: LaneSlots,
                       lease_s: float) -> list[Delivery]:
    """Lease what ``slots`` allows at ``now`` in the caller's transaction, by id."""
    lanes = sorted((c, n) for c, n in slots.per_channel.items() if n > 0)
    if not lanes and slots.other <= 0:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q.CLAIM_LANES, {
            "lanes": [c for c, _ in lanes], "limits": [n for _, n in lanes],
            "named": sorted(slots.per_channel), "other": max(slots.other, 0), "now": now,
            "lease": now + timedelta(seconds=lease_s)})
        rows = await cur.fetchall()
    return sorted((delivery_from_row(r) for r in rows), key=lambda d: d.id)
