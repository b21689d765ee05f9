"""SQLite: a contact's personal data erased (:meth:`~router.store.base.Privacy.
forget_contact`), the history's rows kept, masked. The new values are decided by
:mod:`router.store.erasure`; this module only selects and writes, in one transaction
(the writer's job)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from router.masking import mask_name
from router.store.base import ForgetReport
from router.store.erasure import (
    ERASED,
    FORGOTTEN_REASON,
    erased_channels,
    erased_event_detail,
    masked_recipient,
)
from router.store.sqlite.codec import ts

__all__ = ["forget_contact_job"]


def forget_contact_job(conn: sqlite3.Connection, contact_id: str, at: datetime,
                       phones: Sequence[str]) -> ForgetReport:
    """Erase ``contact_id``'s personal data; the counts of what changed."""
    now = ts(at)
    rows = conn.execute(
        "SELECT id, idempotency_key, channel, recipient, status FROM deliveries"
        " WHERE contact_id = ? ORDER BY id", (contact_id,)).fetchall()
    numbers = set(phones) | {r["recipient"] for r in rows
                             if r["channel"] == "sms" and "*" not in r["recipient"]}
    cancelled = sum(1 for r in rows if r["status"] == "pending")
    conn.executemany(
        "UPDATE deliveries SET recipient = ?, subject = ?, text = ?, html = NULL,"
        " last_error = CASE WHEN last_error IS NULL THEN NULL ELSE ? END,"
        " status = CASE status WHEN 'pending' THEN 'cancelled' ELSE status END,"
        " dead_letter_reason = CASE status WHEN 'pending' THEN ? ELSE dead_letter_reason END,"
        " next_attempt_at = CASE status WHEN 'pending' THEN NULL ELSE next_attempt_at END,"
        " lease_until = NULL, updated_at = ? WHERE id = ?",
        [(masked_recipient(r["recipient"]), ERASED, ERASED, ERASED, FORGOTTEN_REASON, now,
          r["id"]) for r in rows])
    fallbacks = conn.execute(
        "SELECT primary_key, channel, recipient FROM planned_fallbacks WHERE primary_key IN"
        " (SELECT idempotency_key FROM deliveries WHERE contact_id = ?)",
        (contact_id,)).fetchall()
    conn.executemany(
        "UPDATE planned_fallbacks SET recipient = ?, subject = ?, text = ?, html = NULL,"
        " failed_reason = CASE WHEN failed_reason IS NULL THEN NULL ELSE ? END"
        " WHERE primary_key = ? AND channel = ?",
        [(masked_recipient(f["recipient"]), ERASED, ERASED, ERASED, f["primary_key"],
          f["channel"]) for f in fallbacks])
    subscriptions = conn.execute("DELETE FROM push_subscriptions WHERE contact_id = ?",
                                 (contact_id,)).rowcount
    logs = conn.execute(
        "SELECT incident_id, audience, channels FROM incident_recipients"
        " WHERE contact_id = ?", (contact_id,)).fetchall()
    conn.executemany(
        "UPDATE incident_recipients SET channels = ?"
        " WHERE incident_id = ? AND audience = ? AND contact_id = ?",
        [(erased_channels(r["channels"]), r["incident_id"], r["audience"], contact_id)
         for r in logs])
    events = conn.execute(
        "SELECT id, detail FROM incident_events WHERE json_valid(detail)"
        " AND json_extract(detail, '$.contact_id') = ?", (contact_id,)).fetchall()
    conn.executemany("UPDATE incident_events SET detail = ? WHERE id = ?",
                     [(erased_event_detail(e["detail"]), e["id"]) for e in events])
    acked = conn.execute(
        "SELECT id, acknowledged_by_name FROM incidents WHERE acknowledged_by_id = ?",
        (contact_id,)).fetchall()
    conn.executemany("UPDATE incidents SET acknowledged_by_name = ? WHERE id = ?",
                     [(mask_name(r["acknowledged_by_name"] or ""), r["id"]) for r in acked])
    opt_outs = 0
    for number in sorted(numbers):
        opt_outs += conn.execute("DELETE FROM sms_opt_outs WHERE phone = ?",
                                 (number,)).rowcount
    return ForgetReport(
        contact_id=contact_id, deliveries_masked=len(rows), deliveries_cancelled=cancelled,
        fallbacks_masked=len(fallbacks), push_subscriptions_deleted=subscriptions,
        notification_logs_masked=len(logs), timeline_events_masked=len(events),
        acknowledgements_masked=len(acked), opt_outs_deleted=opt_outs)
