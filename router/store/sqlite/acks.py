"""SQLite persistence of acknowledgements: answers, waiting requests, SMS opt-outs.

:func:`acknowledge_job` applies a :class:`~router.incidents.acks.AckChange` in the
writer's transaction, guarded by the incident's ``version`` inside the ``UPDATE`` (no
row: a conflict, nothing written), like a flush. The decision is not taken here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from router.incidents.acks import AckChange
from router.store.base import AckRequest, OptOut
from router.store.sqlite.codec import parse_ts, ts

__all__ = ["acknowledge_job", "opt_outs_query", "pending_acks_query", "record_opt_out_job"]


def acknowledge_job(conn: sqlite3.Connection, incident_id: str, version: int,
                    change: AckChange, now: datetime) -> bool:
    """Apply ``change`` under ``version``; False (nothing written) on a conflict."""
    at_s = ts(change.at)
    ack = change.ack
    columns = ""
    params: tuple[object, ...] = ()
    if ack is not None:
        columns = (" acknowledged_at = ?, acknowledged_by_id = ?, acknowledged_by_name = ?,"
                   " ack_channel = ?,")
        params = (ts(ack.at), ack.by_id, ack.by_name, ack.channel)
    # The version guard is in the UPDATE itself; the timer moves to the answer at the
    # latest, so the scheduler plans the acknowledged notices (and no reminder) now.
    updated = conn.execute(
        "UPDATE incidents SET" + columns
        + " due_at = CASE WHEN due_at IS NULL OR due_at > ? THEN ? ELSE due_at END,"
        " updated_at = ?, version = version + 1"
        " WHERE id = ? AND version = ? AND state = 'open'",
        (*params, at_s, at_s, ts(now), incident_id, version))
    if updated.rowcount != 1:
        return False
    conn.executemany(
        "UPDATE incident_recipients SET answered_at = ? WHERE incident_id = ?"
        " AND audience = ? AND contact_id = ? AND answered_at IS NULL",
        [(at_s, incident_id, audience, contact_id) for audience, contact_id in change.answered])
    conn.execute("INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?,?,?,?)",
                 (incident_id, at_s, change.event.kind,
                  json.dumps(dict(change.event.detail), ensure_ascii=False,
                             separators=(",", ":"), sort_keys=True)))
    return True


_PENDING: Final = (
    "SELECT i.id, i.route_id, json_extract(i.decision, '$.owner') AS owner, i.severity,"
    " i.group_labels, r.audience, r.contact_id, r.asked_at,"
    " (SELECT json_extract(a.labels, '$.alertname') FROM incident_alerts a"
    "  WHERE a.incident_id = i.id ORDER BY a.starts_at, a.fingerprint LIMIT 1) AS alertname"
    " FROM incident_recipients r JOIN incidents i ON i.id = r.incident_id"
    " WHERE r.contact_id IN ({marks}) AND r.asked_at IS NOT NULL AND r.answered_at IS NULL"
    " AND i.state = 'open' AND i.acknowledged_at IS NULL"
    " ORDER BY r.asked_at, i.id, r.contact_id, r.audience"
)


def pending_acks_query(conn: sqlite3.Connection,
                       contact_ids: Sequence[str]) -> list[AckRequest]:
    """Requests still waiting for one of ``contact_ids``' answer (one per incident and
    contact: the earliest request), oldest first."""
    ids = sorted(set(contact_ids))
    if not ids:
        return []
    out: list[AckRequest] = []
    seen: set[tuple[str, str]] = set()
    sql = _PENDING.format(marks=",".join("?" * len(ids)))
    for row in conn.execute(sql, ids):
        key = (row["id"], row["contact_id"])
        if key in seen:
            continue
        seen.add(key)
        out.append(AckRequest(
            incident_id=row["id"], route_id=row["route_id"], owner=row["owner"],
            severity=row["severity"], audience=row["audience"], contact_id=row["contact_id"],
            asked_at=parse_ts(row["asked_at"]), group_labels=json.loads(row["group_labels"]),
            alertname=str(row["alertname"] or "")))
    return out


def record_opt_out_job(conn: sqlite3.Connection, phone: str, keyword: str,
                       at: datetime) -> None:
    """Record an SMS opt-out."""
    conn.execute("INSERT INTO sms_opt_outs (phone, keyword, at) VALUES (?, ?, ?)",
                 (phone, keyword, ts(at)))


def opt_outs_query(conn: sqlite3.Connection, phone: str | None, limit: int) -> list[OptOut]:
    """SMS opt-outs, newest first."""
    if phone is None:
        rows = conn.execute("SELECT phone, keyword, at FROM sms_opt_outs ORDER BY id DESC"
                            " LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute("SELECT phone, keyword, at FROM sms_opt_outs WHERE phone = ?"
                            " ORDER BY id DESC LIMIT ?", (phone, limit)).fetchall()
    return [OptOut(phone=r["phone"], keyword=r["keyword"], at=parse_ts(r["at"])) for r in rows]
