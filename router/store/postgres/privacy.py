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

    The PostgreSQL schema has no acknowledgement columns nor opt-out table yet: the
    report's ``acknowledgements_masked`` and ``opt_outs_deleted`` stay 0 (``phones`` is
    accepted for the same contract)."""
    del phones
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q.FORGET_DELIVERIES, (contact_id,))
        rows = await cur.fetchall()
        await cur.execute(q.FORGET_FALLBACKS, (contact_id,))
        fallbacks = await cur.fetchall()
        await cur.execute(q.FORGET_LOGS, (contact_id,))
        logs = await cur.fetchall()
        await cur.execute(q.FORGET_EVENTS, (contact_id,))
        events = await cur.fetchall()
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
    return ForgetReport(
        contact_id=contact_id, deliveries_masked=len(rows),
        deliveries_cancelled=sum(1 for r in rows if r["status"] == "pending"),
        fallbacks_masked=len(fallbacks), push_subscriptions_deleted=subscriptions,
        notification_logs_masked=len(logs), timeline_events_masked=len(events))
