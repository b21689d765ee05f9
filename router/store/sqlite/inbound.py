"""Inbound messages already handled (``inbound_messages``): duplicates act once.

The SQL lives here as plain functions on a connection; :class:`~router.store.sqlite.
SqliteStore` runs them in its writer thread.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Final

from router.store.sqlite.codec import ts

__all__ = ["FORGET_BATCH", "forget_inbound", "remember_inbound"]

#: Old rows forgotten per new row at most (bounded writes; more than one per insert, so
#: the table shrinks back after a burst).
FORGET_BATCH: Final = 100


def remember_inbound(conn: sqlite3.Connection, kind: str, message_id: str, at: datetime,
                     forget_before: datetime | None) -> bool:
    """Record ``(kind, message_id)``; True when it was not known yet."""
    if forget_before is not None:
        conn.execute(
            "DELETE FROM inbound_messages WHERE rowid IN (SELECT rowid FROM inbound_messages"
            " WHERE seen_at < ? ORDER BY seen_at LIMIT ?)", (ts(forget_before), FORGET_BATCH))
    cursor = conn.execute(
        "INSERT INTO inbound_messages (kind, message_id, seen_at) VALUES (?, ?, ?)"
        " ON CONFLICT (kind, message_id) DO NOTHING", (kind, message_id, ts(at)))
    return cursor.rowcount == 1


def forget_inbound(conn: sqlite3.Connection, kind: str, message_id: str) -> None:
    """Forget ``(kind, message_id)`` (its handling failed: a retry must act)."""
    conn.execute("DELETE FROM inbound_messages WHERE kind = ? AND message_id = ?",
                 (kind, message_id))
