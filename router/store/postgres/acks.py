"""PostgreSQL persistence of acknowledgements: answers, waiting requests, SMS opt-outs.

The same semantics as :mod:`router.store.sqlite.acks`; each function runs inside the
caller's transaction. :func:`acknowledge` applies an
:class:`~router.incidents.acks.AckChange` guarded by the incident's ``version`` inside
the ``UPDATE`` (no row: another instance changed the incident first, nothing written),
like a flush. The decision is not taken here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from router.incidents.acks import AckChange
from router.store.base import AckRequest, OptOut
from router.store.postgres import queries as q
from router.store.postgres.codec import utc

__all__ = ["acknowledge", "opt_outs", "pending_acks", "record_opt_out"]

Conn = AsyncConnection[Any]


async def acknowledge(conn: Conn, incident_id: str, version: int, change: AckChange,
                      now: datetime) -> bool:
    """Apply ``change`` under ``version``; False (nothing written) on a conflict."""
    params: dict[str, Any] = {"at": change.at, "now": now, "id": incident_id,
                              "version": version}
    ack = change.ack
    if ack is None:
        cur = await conn.execute(q.ANSWER_INCIDENT, params)
    else:
        cur = await conn.execute(q.ACKNOWLEDGE_INCIDENT, {
            **params, "ack_at": ack.at, "by_id": ack.by_id, "by_name": ack.by_name,
            "channel": ack.channel})
    if cur.rowcount != 1:
        return False
    if change.answered:
        await conn.execute(q.ANSWER_RECIPIENTS, (
            change.at, [audience for audience, _ in change.answered],
            [contact for _, contact in change.answered], incident_id))
    await conn.execute(q.INSERT_EVENT, (
        incident_id, change.at, change.event.kind,
        json.dumps(dict(change.event.detail), ensure_ascii=False, separators=(",", ":"),
                   sort_keys=True)))
    return True


async def pending_acks(conn: Conn, contact_ids: Sequence[str]) -> list[AckRequest]:
    """Requests still waiting for one of ``contact_ids``' answer (one per incident and
    contact: the earliest request), oldest first."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q.PENDING_ACKS, (ids,))
        rows = await cur.fetchall()
    out: list[AckRequest] = []
    for row in rows:
        owner = json.loads(row["decision"]).get("owner")
        labels = json.loads(row["first_labels"]) if row["first_labels"] is not None else {}
        out.append(AckRequest(
            incident_id=row["id"], route_id=row["route_id"],
            owner=None if owner is None else str(owner), severity=row["severity"],
            audience=row["audience"], contact_id=row["contact_id"],
            asked_at=utc(row["asked_at"]), group_labels=json.loads(row["group_labels"]),
            alertname=str(labels.get("alertname") or "")))
    return out


async def record_opt_out(conn: Conn, phone: str, keyword: str, at: datetime) -> None:
    """Record an SMS opt-out."""
    await conn.execute(q.INSERT_OPT_OUT, (phone, keyword, at))


async def opt_outs(conn: Conn, phone: str | None, limit: int) -> list[OptOut]:
    """SMS opt-outs (of ``phone``, or all), newest first."""
    cur = (await conn.execute(q.OPT_OUTS, (limit,)) if phone is None
           else await conn.execute(q.PHONE_OPT_OUTS, (phone, limit)))
    return [OptOut(phone=str(p), keyword=str(k), at=utc(at))
            for p, k, at in await cur.fetchall()]
