"""The instances table: heartbeats of the Tocsin instances sharing the store.

The SQL lives here as plain functions on a connection; :class:`~router.store.sqlite.
SqliteStore` runs them in its writer / reader threads. The value type is
:class:`router.store.base.InstanceInfo`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from router.store.base import INSTANCE_FORGET_S, InstanceInfo
from router.store.sqlite.codec import parse_ts, ts

__all__ = ["heartbeat_job", "instances_query"]

_UPSERT = (
    "INSERT INTO instances (instance_id, version, rules_hash, started_at, seen_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET"
    " version = excluded.version, rules_hash = excluded.rules_hash,"
    " started_at = excluded.started_at, seen_at = excluded.seen_at"
)
_FORGET = "DELETE FROM instances WHERE seen_at < ?"
_SEEN = ("SELECT instance_id, version, rules_hash, started_at, seen_at FROM instances"
         " WHERE seen_at >= ? ORDER BY instance_id")


def heartbeat_job(conn: sqlite3.Connection, instance_id: str, version: str, rules_hash: str,
                  started_at: datetime, now: datetime) -> None:
    """Upsert the instance's row; forget instances gone for :data:`INSTANCE_FORGET_S`."""
    conn.execute(_UPSERT, (instance_id, version, rules_hash, ts(started_at), ts(now)))
    conn.execute(_FORGET, (ts(now - timedelta(seconds=INSTANCE_FORGET_S)),))


def instances_query(conn: sqlite3.Connection, now: datetime,
                    within_s: float) -> list[InstanceInfo]:
    """Instances seen in the last ``within_s`` seconds, by id."""
    rows = conn.execute(_SEEN, (ts(now - timedelta(seconds=within_s)),)).fetchall()
    return [InstanceInfo(instance_id=row[0], version=row[1], rules_hash=row[2],
                         started_at=parse_ts(row[3]), seen_at=parse_ts(row[4]))
            for row in rows]
