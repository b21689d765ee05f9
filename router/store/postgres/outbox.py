"""PostgreSQL jobs of the outbox and of retention: deliveries, fallbacks, bounded deletes.

The same semantics as :mod:`router.store.sqlite.outcomes` and
:mod:`router.store.sqlite.retention`; each function runs inside the caller's transaction.
A delivery is inserted once per idempotency key (``ON CONFLICT DO NOTHING``), so two
instances planning the same notice insert one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from router.models import NewDelivery
from router.store.base import Prunable, PruneStep
from router.store.postgres import queries as q
from router.store.postgres.codec import utc
from router.store.sqlite.outcomes import DEAD_LETTER_REASONS, UNREPLAYABLE_REASONS

__all__ = [
    "delivery_params",
    "fail_delivery",
    "insert_delivery",
    "prune_step",
    "requeue_failed",
    "sent_delivery",
]

Conn = AsyncConnection[Any]


def delivery_params(d: NewDelivery, now: datetime, deadline: datetime) -> tuple[object, ...]:
    """The parameters of :data:`~router.store.postgres.queries.INSERT_DELIVERY`."""
    failed = d.failed_reason is not None
    return (
        d.idempotency_key, d.incident_key, d.fingerprint, d.route_id, d.phase, d.channel,
        d.recipient, d.contact_id, d.audience, d.severity, d.locale, d.message.subject,
        d.message.text, d.message.html, "failed" if failed else "pending", now, now,
        None if failed else now, deadline, d.failed_reason,
        d.dead_letter_reason if failed else None,
    )


async def insert_delivery(conn: Conn, d: NewDelivery, now: datetime,
                          deadline: datetime) -> int | None:
    """Insert one delivery (and plan its fallback); None when its key already existed."""
    row = await (await conn.execute(q.INSERT_DELIVERY, delivery_params(d, now, deadline))
                 ).fetchone()
    if row is None:
        return None
    new_id = int(row[0])
    if (f := d.fallback) is not None:
        await conn.execute(q.INSERT_PLANNED, (
            d.idempotency_key, f.idempotency_key, f.channel, f.recipient, f.message.subject,
            f.message.text, f.message.html, f.failed_reason))
        if d.failed_reason is not None:  # e.g. its render failed: the fallback goes now
            await activate_fallbacks(conn, new_id, now)
    return new_id


async def activate_fallbacks(conn: Conn, delivery_id: int, at: datetime) -> list[int]:
    """Insert the planned fallbacks of ``delivery_id`` as deliveries; return their ids."""
    row = await (await conn.execute(q.DELIVERY_WINDOW, (delivery_id,))).fetchone()
    if row is None:
        return []
    window = utc(row[2]) - utc(row[1])
    deadline = at + max(window, timedelta(seconds=60))
    cur = await conn.execute(q.INSERT_FALLBACKS, {"now": at, "deadline": deadline,
                                                  "id": delivery_id})
    ids = [int(r[0]) for r in await cur.fetchall()]
    await conn.execute(q.DROP_PLANNED, (row[0],))
    return ids


async def fail_delivery(conn: Conn, delivery_id: int, at: datetime, error: str,
                        reason: str) -> list[int]:
    """pending → failed (dead letter) and insert its fallbacks; return their new ids."""
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    cur = await conn.execute(q.MARK_FAILED, (error, reason, at, delivery_id))
    if cur.rowcount != 1:
        return []
    return await activate_fallbacks(conn, delivery_id, at)


async def sent_delivery(conn: Conn, delivery_id: int, at: datetime,
                        provider_id: str | None, segments: int | None) -> bool:
    """pending → sent with the provider's id and SMS parts; drop its planned fallbacks."""
    row = await (await conn.execute(
        q.MARK_SENT, (at, provider_id, segments, at, delivery_id))).fetchone()
    if row is None:
        return False
    await conn.execute(q.DROP_PLANNED, (row[0],))
    return True


async def requeue_failed(conn: Conn, ids: Sequence[int] | None, now: datetime,
                         deadline_s: float) -> list[int]:
    """failed → pending, due now, with a fresh deadline (plan-time dead letters skipped)."""
    params: dict[str, object] = {
        "now": now, "deadline": now + timedelta(seconds=deadline_s),
        "unreplayable": list(UNREPLAYABLE_REASONS)}
    if ids is None:
        cur = await conn.execute(q.REQUEUE_ALL_FAILED, params)
    elif not ids:
        return []
    else:
        cur = await conn.execute(q.REQUEUE_FAILED, {**params, "ids": list(ids)})
    return sorted(int(r[0]) for r in await cur.fetchall())


# --------------------------------------------------------------------------- retention


async def prune_step(conn: Conn, kind: Prunable, cutoff: datetime, cursor: int,
                     chunk: int) -> PruneStep:
    """Delete at most ``chunk`` rows of ``kind`` older than ``cutoff``."""
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if kind == "intake":
        return await _walk(conn, q.INTAKE_CHUNK, q.PRUNE_INTAKE, cutoff, cursor, chunk)
    if kind == "dead_intake":
        rows = await (await conn.execute(q.DEAD_INTAKE_CHUNK, (cursor, chunk))).fetchall()
        if not rows:
            return PruneStep(0, cursor, True)
        last = int(rows[-1][0])
        cur = await conn.execute(q.PRUNE_DEAD_INTAKE, (cursor, last, cutoff))
        return PruneStep(cur.rowcount, last, len(rows) < chunk)
    if kind == "deliveries":
        step = await _walk(conn, q.DELIVERIES_CHUNK, q.PRUNE_DELIVERIES, cutoff, cursor, chunk)
        if step.deleted:
            await conn.execute(q.PRUNE_ORPHAN_FALLBACKS)
        return step
    ids = [str(r[0]) for r in await (await conn.execute(
        q.RESOLVED_INCIDENTS, (cutoff, cutoff, chunk))).fetchall()]
    if not ids:
        return PruneStep(0, 0, True)
    for sql in q.PRUNE_INCIDENT_PARTS:
        await conn.execute(sql, (ids,))
    deleted = (await conn.execute(q.PRUNE_INCIDENTS, (ids,))).rowcount
    await conn.execute(q.PRUNE_SENT_STORMS, (cutoff,))
    return PruneStep(deleted, 0, len(ids) < chunk)


async def _walk(conn: Conn, chunk_sql: Any, delete_sql: Any, cutoff: datetime, cursor: int,
                chunk: int) -> PruneStep:
    """One chunk of an id-ordered table: delete its ended rows older than ``cutoff``."""
    rows = await (await conn.execute(chunk_sql, (cursor, chunk))).fetchall()
    if not rows:
        return PruneStep(0, cursor, True)
    last = int(rows[-1][0])
    if not any(utc(at) < cutoff for _, at in rows):
        return PruneStep(0, last, True)
    deleted = (await conn.execute(delete_sql, (cursor, last, cutoff))).rowcount
    return PruneStep(deleted, last, len(rows) < chunk)
