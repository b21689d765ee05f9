"""Delivery outcomes beyond sent/retry: dead letters, channel fallback, replay, deferral.

Plain SQL functions on a connection, run by :class:`~router.store.sqlite.SqliteStore`
inside its writer transactions:

- a delivery planned with a fallback (``route.fallback: {sms: email}``) stores the
  fallback, already rendered, in ``planned_fallbacks``; :func:`fail_delivery` marks the
  primary failed (a *dead letter*, with a reason) and, in the same transaction, inserts
  the fallback as a new pending delivery with its own idempotency key (a key that
  already exists — the route also sends on that channel — is not inserted twice);
  :func:`sent_delivery` drops the plan once the primary is sent;
- :func:`requeue_failed` replays dead letters (``tocsin deliveries retry``);
- :func:`defer_delivery` hands a claimed row back unsent (the channel's rate limit had
  no token soon enough) without counting the attempt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from router.models import NewDelivery
from router.store.sqlite.codec import parse_ts, ts

__all__ = [
    "DEAD_LETTER_REASONS",
    "UNREPLAYABLE_REASONS",
    "defer_delivery",
    "fail_delivery",
    "plan_fallbacks",
    "requeue_failed",
    "sent_delivery",
]

#: Why a delivery is a dead letter: at send time (permanent, deadline, unconfigured) or
#: at plan time (render: the template failed; plan: planning the notice failed).
DEAD_LETTER_REASONS: Final = ("permanent", "deadline", "unconfigured", "render", "plan")
#: Plan-time dead letters: no message was made, so there is nothing to replay.
UNREPLAYABLE_REASONS: Final = ("render", "plan")

_INSERT_PLANNED = (
    "INSERT INTO planned_fallbacks (primary_key, idempotency_key, channel, recipient,"
    " subject, text, html, failed_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (primary_key, channel) DO NOTHING"
)
_INSERT_FALLBACK = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text, html,"
    " status, attempts, created_at, updated_at, next_attempt_at, deadline_at, last_error,"
    " fallback_of, dead_letter_reason)"
    " SELECT f.idempotency_key, d.incident_key, d.fingerprint, d.route_id, d.phase,"
    " f.channel, f.recipient, d.contact_id, d.audience, d.severity, d.locale, f.subject,"
    " f.text, f.html,"
    " CASE WHEN f.failed_reason IS NULL THEN 'pending' ELSE 'failed' END, 0, :now, :now,"
    " CASE WHEN f.failed_reason IS NULL THEN :now END, :deadline, f.failed_reason, d.id,"
    " CASE WHEN f.failed_reason IS NULL THEN NULL ELSE 'permanent' END"
    " FROM planned_fallbacks f JOIN deliveries d ON d.idempotency_key = f.primary_key"
    " WHERE d.id = :id ORDER BY f.channel"
    " ON CONFLICT (idempotency_key) DO NOTHING"
    " RETURNING id"
)


def plan_fallbacks(conn: sqlite3.Connection, deliveries: Sequence[NewDelivery]) -> None:
    """Store the fallbacks of ``deliveries`` (those that have one)."""
    rows = [
        (d.idempotency_key, f.idempotency_key, f.channel, f.recipient, f.message.subject,
         f.message.text, f.message.html, f.failed_reason)
        for d in deliveries
        if (f := d.fallback) is not None
    ]
    if rows:
        conn.executemany(_INSERT_PLANNED, rows)


def fail_delivery(conn: sqlite3.Connection, delivery_id: int, at: datetime, error: str,
                  reason: str) -> list[int]:
    """pending → failed (dead letter) and insert its fallbacks; return their new ids.

    Does nothing (returns ``[]``) when the row is no longer pending.
    """
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    cursor = conn.execute(
        "UPDATE deliveries SET status = 'failed', last_error = ?, dead_letter_reason = ?,"
        " lease_until = NULL, next_attempt_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'pending'",
        (error, reason, ts(at), delivery_id),
    )
    if cursor.rowcount != 1:
        return []
    return activate_fallbacks(conn, delivery_id, at)


def activate_fallbacks(conn: sqlite3.Connection, delivery_id: int, at: datetime) -> list[int]:
    """Insert the planned fallbacks of ``delivery_id`` as deliveries; return their ids.

    A fallback gets as long to succeed as its primary had (its deadline is ``at`` plus
    the primary's deadline minus its creation time).
    """
    row = conn.execute("SELECT idempotency_key, created_at, deadline_at FROM deliveries"
                       " WHERE id = ?", (delivery_id,)).fetchone()
    if row is None:
        return []
    window = parse_ts(row[2]) - parse_ts(row[1])
    deadline = at + max(window, timedelta(seconds=60))
    ids = [int(r[0]) for r in conn.execute(
        _INSERT_FALLBACK, {"now": ts(at), "deadline": ts(deadline), "id": delivery_id}
    ).fetchall()]
    conn.execute("DELETE FROM planned_fallbacks WHERE primary_key = ?", (row[0],))
    return ids


def sent_delivery(conn: sqlite3.Connection, delivery_id: int, at: datetime,
                  provider_id: str | None, segments: int | None) -> bool:
    """pending → sent with the provider's id and SMS parts; drop its planned fallbacks."""
    row = conn.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = ?, provider_id = ?, segments = ?,"
        " lease_until = NULL, next_attempt_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'pending' RETURNING idempotency_key",
        (ts(at), provider_id, segments, ts(at), delivery_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute("DELETE FROM planned_fallbacks WHERE primary_key = ?", (row[0],))
    return True


def requeue_failed(conn: sqlite3.Connection, ids: Sequence[int] | None, now: datetime,
                   deadline_s: float) -> list[int]:
    """failed → pending, due now, with a fresh deadline; ``ids=None`` replays every dead
    letter. Attempts are kept (the history stays true); returns the replayed ids.

    Plan-time dead letters (:data:`UNREPLAYABLE_REASONS`) are skipped: their message was
    never rendered, so a replay would send an empty notice."""
    params: list[object] = [ts(now), ts(now), ts(now + timedelta(seconds=deadline_s))]
    where = ("status = 'failed' AND COALESCE(dead_letter_reason, '') NOT IN"
             f" ({', '.join(repr(r) for r in UNREPLAYABLE_REASONS)})")
    if ids is not None:
        if not ids:
            return []
        where += f" AND id IN ({', '.join('?' for _ in ids)})"
        params.extend(ids)
    rows = conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?,"
        " deadline_at = ?, dead_letter_reason = NULL, lease_until = NULL"
        f" WHERE {where} RETURNING id",
        params,
    ).fetchall()
    return sorted(int(r[0]) for r in rows)


def defer_delivery(conn: sqlite3.Connection, delivery_id: int,
                   next_attempt_at: datetime) -> None:
    """Release a claimed row unsent, due at ``next_attempt_at``; the claim's attempt is
    not counted."""
    conn.execute(
        "UPDATE deliveries SET next_attempt_at = ?, lease_until = NULL,"
        " attempts = MAX(attempts - 1, 0) WHERE id = ? AND status = 'pending'",
        (ts(next_attempt_at), delivery_id),
    )
