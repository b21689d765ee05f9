"""PostgreSQL: a contact's personal data erased (:meth:`~router.store.base.Privacy.
forget_contact`), the history's rows kept, masked — the same values as SQLite's
:mod:`router.store.sqlite.privacy` (decided by :mod:`router.store.erasure`), written in
the caller's transaction with the rows locked (``FOR UPDATE``) so that a dispatcher of
another instance cannot send a delivery being erased."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from router.masking import mask_name
from router.store.base import ForgetReport
from router.store.erasure import (
    ERASED,
    FORGOTTEN_REASON,
    erased_channels,
    erased_event_detail,
    masked_recipient,
)
from router.store.postgres import queries as q

__all__ = ["forget_contact"]

Conn = AsyncConnection[Any]


async def forget_contact(conn: Conn, contact_id: str, at: datetime,
                         phones: Sequence[str]) -> ForgetReport:
    """Erase ``contact_id``'s personal data; the counts of what changed.

    The acknowledgement columns and the SMS opt-out table are used when the schema has
    them (until then ``acknowledgements_masked`` and ``opt_outs_deleted`` stay 0)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q.FORGET_DELIVERIES, (contact_id,))
        rows = await cur.fetchall()
        await cur.execute(q.FORGET_FALLBACKS, (contact_id,))
        fallbacks = await cur.fetchall()
        await cur.execute(q.FORGET_LOGS, (contact_id,))
        logs = await cur.fetchall()
        await cur.execute(q.FORGET_EVENTS, (contact_id,))
        events = await cur.fetchall()
        acked: list[dict[str, Any]] = []
        if await _true(conn, q.HAS_ACK_COLUMNS):
            await cur.execute(q.FORGET_ACKS, (contact_id,))
            acked = await cur.fetchall()
    numbers = set(phones) | {r["recipient"] for r in rows
                             if r["channel"] == "sms" and "*" not in r["recipient"]}
    opt_outs = 0
    async with conn.cursor() as cur:
        if rows:
            await cur.executemany(q.FORGET_DELIVERY, [
                {"recipient": masked_recipient(r["recipient"]), "erased": ERASED,
                 "reason": FORGOTTEN_REASON, "now": at, "id": r["id"]} for r in rows])
        if fallbacks:
            await cur.executemany(q.FORGET_FALLBACK, [
                {"recipient": masked_recipient(f["recipient"]), "erased": ERASED,
                 "primary_key": f["primary_key"], "channel": f["channel"]}
                for f in fallbacks])
        await cur.execute(q.FORGET_SUBSCRIPTIONS, (contact_id,))
        subscriptions = cur.rowcount
        if logs:
            await cur.executemany(q.FORGET_LOG, [
                (erased_channels(r["channels"]), r["incident_id"], r["audience"], contact_id)
                for r in logs])
        if events:
            await cur.executemany(q.FORGET_EVENT, [
                (erased_event_detail(e["detail"]), e["id"]) for e in events])
        if acked:
            await cur.executemany(q.FORGET_ACK, [
                (mask_name(r["acknowledged_by_name"] or ""), r["id"]) for r in acked])
        if numbers and await _true(conn, q.HAS_OPT_OUTS):
            await cur.execute(q.FORGET_OPT_OUTS, (sorted(numbers),))
            opt_outs = cur.rowcount
    return ForgetReport(
        contact_id=contact_id, deliveries_masked=len(rows),
        deliveries_cancelled=sum(1 for r in rows if r["status"] == "pending"),
        fallbacks_masked=len(fallbacks), push_subscriptions_deleted=subscriptions,
        notification_logs_masked=len(logs), timeline_events_masked=len(events),
        acknowledgements_masked=len(acked), opt_outs_deleted=opt_outs)


async def _true(conn: Conn, sql: str) -> bool:
    row = await (await conn.execute(sql)).fetchone()
    return bool(row and row[0])
