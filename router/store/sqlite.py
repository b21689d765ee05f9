"""The embedded SQLite store (the default).

Writes go through one :class:`~router.store.writer.SqliteWriter` thread with group
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
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from router.metrics import PLANNED_DELIVERIES
from router.models import Delivery, IntakeRecord, NewDelivery, Receipt
from router.store.codec import (
    alert_to_json,
    delivery_from_row,
    intake_from_row,
    meta_to_json,
    ts,
)
from router.store.migrate import migrate
from router.store.writer import SqliteWriter

__all__ = ["SYNCHRONOUS_MODES", "SqliteStore"]

T = TypeVar("T")

SYNCHRONOUS_MODES = frozenset({"FULL", "NORMAL", "EXTRA"})
_STATUSES = frozenset({"pending", "sent", "failed"})

_INSERT_INTAKE = (
    "INSERT INTO intake (source, received_at, fingerprint, alert, meta) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_DELIVERY = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text, html,"
    " status, attempts, created_at, updated_at, next_attempt_at, deadline_at, last_error)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
    " ON CONFLICT (idempotency_key) DO NOTHING"
)
_CLAIM = (
    "UPDATE deliveries SET lease_until = :lease, next_attempt_at = :lease,"
    " attempts = attempts + 1, updated_at = :now"
    " WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending'"
    " AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit)"
    " RETURNING *"
)


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
                raise RuntimeError("store is not started")
            return await self._writer.submit(fn)

        def run() -> T:
            assert self._read_conn is not None
            return fn(self._read_conn)

        return await asyncio.get_running_loop().run_in_executor(reader, run)

    # -- intake -----------------------------------------------------------------------

    async def append_intake(self, records: Sequence[IntakeRecord]) -> list[int]:
        """Persist accepted alerts; returns their ids after the group COMMIT."""
        if not records:
            return []
        rows = [
            (r.source, ts(r.received_at), r.alert.fingerprint, alert_to_json(r.alert),
             meta_to_json(r.meta))
            for r in records
        ]

        def job(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            for row in rows:
                cursor = conn.execute(_INSERT_INTAKE, row)
                assert cursor.lastrowid is not None
                ids.append(cursor.lastrowid)
            return ids

        return await self._writer.submit(job)

    async def fetch_intake(self, limit: int) -> list[tuple[int, IntakeRecord]]:
        """Unprocessed intake rows, oldest first."""

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                "SELECT id, source, received_at, alert, meta FROM intake"
                " WHERE processed_at IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()

        return [intake_from_row(row) for row in await self._read(query)]

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
                if conn.execute(_INSERT_DELIVERY, row).rowcount == 1:
                    inserted.append(index)
            conn.executemany(
                "UPDATE intake SET processed_at = ? WHERE id = ? AND processed_at IS NULL",
                processed,
            )
            return inserted

        inserted = await self._writer.submit(job)
        for index in inserted:
            delivery = deliveries[index]
            PLANNED_DELIVERIES.labels(channel=delivery.channel, phase=delivery.phase).inc()
        return len(inserted)

    # -- outbox -----------------------------------------------------------------------

    async def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[Delivery]:
        """Lease due pending deliveries (counts one attempt each), oldest due first."""
        if limit <= 0:
            return []
        params = {"now": ts(now), "lease": ts(now + timedelta(seconds=lease_s)), "limit": limit}

        def job(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(_CLAIM, params).fetchall()

        claimed = [delivery_from_row(row) for row in await self._writer.submit(job)]
        claimed.sort(key=lambda d: d.id)
        return claimed

    async def mark_sent(self, delivery_id: int, at: datetime, receipt: Receipt) -> None:
        """pending → sent, with the provider's id."""
        at_s = ts(at)
        await self._update(
            "UPDATE deliveries SET status = 'sent', sent_at = ?, provider_id = ?,"
            " lease_until = NULL, next_attempt_at = NULL, updated_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (at_s, receipt.provider_id, at_s, delivery_id),
        )

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

    async def mark_failed(self, delivery_id: int, at: datetime, error: str) -> None:
        """pending → failed (permanent), with the reason."""
        await self._update(
            "UPDATE deliveries SET status = 'failed', last_error = ?, lease_until = NULL,"
            " next_attempt_at = NULL, updated_at = ? WHERE id = ? AND status = 'pending'",
            (error, ts(at), delivery_id),
        )

    async def _update(self, sql: str, params: tuple[object, ...]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self._writer.submit(job)

    # -- reads ------------------------------------------------------------------------

    async def list_deliveries(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Delivery]:
        """Newest first; ``status`` in pending|sent|failed or None for all."""
        if status is not None and status not in _STATUSES:
            raise ValueError(f"unknown delivery status {status!r}")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")

        def query(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            if status is None:
                return conn.execute(
                    "SELECT * FROM deliveries ORDER BY id DESC LIMIT ? OFFSET ?",
                    (limit, offset),
                ).fetchall()
            return conn.execute(
                "SELECT * FROM deliveries WHERE status = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                (status, limit, offset),
            ).fetchall()

        return [delivery_from_row(row) for row in await self._read(query)]

    async def counts(self) -> dict[str, int]:
        """Unrouted intake rows and deliveries per status."""

        def query(conn: sqlite3.Connection) -> dict[str, int]:
            result = {"intake_pending": 0, "pending": 0, "sent": 0, "failed": 0}
            row = conn.execute(
                "SELECT COUNT(*) FROM intake WHERE processed_at IS NULL"
            ).fetchone()
            result["intake_pending"] = int(row[0])
            for status, count in conn.execute(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status"
            ):
                result[status] = int(count)
            return result

        return await self._read(query)

    async def ping(self) -> bool:
        """True when a trivial query answers."""

        def query(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute("SELECT 1").fetchone()[0] == 1)

        try:
            return await self._read(query)
        except (sqlite3.Error, RuntimeError):
            return False


def _delivery_params(d: NewDelivery, now: str, deadline: str) -> tuple[object, ...]:
    failed = d.failed_reason is not None
    return (
        d.idempotency_key, d.incident_key, d.fingerprint, d.route_id, d.phase, d.channel,
        d.recipient, d.contact_id, d.audience, d.severity, d.locale, d.message.subject,
        d.message.text, d.message.html, "failed" if failed else "pending", now, now,
        None if failed else now, deadline, d.failed_reason,
    )
