"""Retention: bounded deletes of history that is no longer needed (SQLite).

Each pruner is one writer job that deletes at most ``chunk`` rows, so a large backlog
never holds the writer thread (and the webhook's group commit behind it) for long: the
caller repeats the step until it reports ``done``. What is pruned:

- ``intake``: rows already routed (``processed_at`` set) received before the cutoff.
  Unprocessed rows are never touched, however old.
- ``dead_intake``: rows whose routing raised and that were dead-lettered (``dead_at``
  set) before the cutoff and never replayed since. Rows still pending are never touched.
- ``deliveries``: the notification history of rows that ended (``sent`` or ``failed``)
  before the cutoff. Pending rows, held or retrying, are never touched.
- ``incidents``: incidents resolved before the cutoff, with their alerts, notification
  log, timeline and storm-control notices. Open incidents are never touched.

The intake and the outbox are walked in id order (ids follow insertion time) from the
cursor the previous step returned, without an index on their timestamps (which would
cost every insert on the webhook path); a step that finds no row older than the cutoff
in a whole chunk ends the walk.
Dead-lettered intake rows are walked in id order too, through the partial index
``intake_dead`` (few rows): ``dead_at`` does not follow the ids (a row replayed and
dead-lettered again), so the walk goes to the last of them.
"""

from __future__ import annotations

import sqlite3

from router.store.base import PRUNABLE, Prunable, PruneStep

__all__ = ["PRUNABLE", "Prunable", "PruneStep", "prune_step"]

def prune_step(conn: sqlite3.Connection, kind: Prunable, cutoff: str, cursor: int,
               chunk: int) -> PruneStep:
    """Delete at most ``chunk`` rows of ``kind`` older than ``cutoff`` (ISO text, UTC)."""
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    if kind == "intake":
        return _walk(conn, "intake", "received_at",
                     "processed_at IS NOT NULL", cutoff, cursor, chunk)
    if kind == "dead_intake":
        return _prune_dead_intake(conn, cutoff, cursor, chunk)
    if kind == "deliveries":
        return _walk(conn, "deliveries", "updated_at",
                     "status IN ('sent', 'failed')", cutoff, cursor, chunk)
    return _prune_incidents(conn, cutoff, chunk)


def _walk(conn: sqlite3.Connection, table: str, at_column: str, ended: str, cutoff: str,
          cursor: int, chunk: int) -> PruneStep:
    """One chunk of an id-ordered table: delete its ended rows older than ``cutoff``."""
    rows = conn.execute(
        f"SELECT id, {at_column} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
        (cursor, chunk),
    ).fetchall()
    if not rows:
        return PruneStep(0, cursor, True)
    last = int(rows[-1][0])
    if not any(str(at) < cutoff for _, at in rows):
        return PruneStep(0, last, True)
    deleted = conn.execute(
        f"DELETE FROM {table} WHERE id > ? AND id <= ? AND {ended} AND {at_column} < ?",
        (cursor, last, cutoff),
    ).rowcount
    if table == "deliveries":
        # A fallback planned for a delivery that ended is never used any more.
        conn.execute("DELETE FROM planned_fallbacks WHERE primary_key NOT IN "
                     "(SELECT idempotency_key FROM deliveries)")
    return PruneStep(deleted, last, len(rows) < chunk)


def _prune_dead_intake(conn: sqlite3.Connection, cutoff: str, cursor: int,
                      chunk: int) -> PruneStep:
    """One chunk of the dead-lettered intake rows: delete those dead before ``cutoff``."""
    rows = conn.execute(
        "SELECT id FROM intake WHERE dead_at IS NOT NULL AND id > ? ORDER BY id LIMIT ?",
        (cursor, chunk),
    ).fetchall()
    if not rows:
        return PruneStep(0, cursor, True)
    last = int(rows[-1][0])
    deleted = conn.execute(
        "DELETE FROM intake WHERE id > ? AND id <= ? AND dead_at IS NOT NULL"
        " AND processed_at IS NULL AND dead_at < ?",
        (cursor, last, cutoff),
    ).rowcount
    return PruneStep(deleted, last, len(rows) < chunk)


def _prune_incidents(conn: sqlite3.Connection, cutoff: str, chunk: int) -> PruneStep:
    """Resolved incidents (opened and resolved before ``cutoff``) and what hangs on them."""
    # incidents_list (state, opened_at): an incident resolved before the cutoff was
    # opened before it too, so the index bounds the scan.
    ids = [str(row[0]) for row in conn.execute(
        "SELECT id FROM incidents WHERE state = 'resolved' AND opened_at < ? "
        "AND resolved_at < ? LIMIT ?", (cutoff, cutoff, chunk))]
    if not ids:
        return PruneStep(0, 0, True)
    marks = ",".join("?" * len(ids))
    for table in ("incident_alerts", "incident_recipients", "incident_events",
                  "storm_notices"):
        conn.execute(f"DELETE FROM {table} WHERE incident_id IN ({marks})", ids)
    deleted = conn.execute(f"DELETE FROM incidents WHERE id IN ({marks})", ids).rowcount
    conn.execute("DELETE FROM storms WHERE sent_at IS NOT NULL AND sent_at < ?", (cutoff,))
    return PruneStep(deleted, 0, len(ids) < chunk)
