"""Web Push subscriptions: the browser's ``PushSubscription`` stored per contact.

A subscription is identified by its contact and its ``endpoint`` URL: one browser may be
subscribed for several contacts (a shared on-call laptop), each keeps its own row, and
registering the same endpoint for the same contact again (the browser re-subscribed)
replaces its keys. The keys belong to the browser, so they are updated on every row of
the endpoint. The push channel removes a subscription when the push service answers 404 or
410 (the browser unsubscribed or the subscription expired).

The SQL lives here as plain functions on a connection; :class:`~router.store.sqlite.
SqliteStore` runs them in its writer / reader threads. The value type and the check of a
browser's JSON are in :mod:`router.store.base`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from router.store.base import PushSubscription
from router.store.sqlite.codec import parse_ts, ts

__all__ = [
    "delete_subscription",
    "delete_subscription_by_endpoint",
    "list_subscriptions",
    "upsert_subscription",
]


def _from_row(row: sqlite3.Row) -> PushSubscription:
    return PushSubscription(id=int(row["id"]), contact_id=row["contact_id"],
                            endpoint=row["endpoint"], p256dh=row["p256dh"], auth=row["auth"],
                            created_at=parse_ts(row["created_at"]))


def upsert_subscription(conn: sqlite3.Connection, contact_id: str, endpoint: str,
                        p256dh: str, auth: str, now: datetime) -> PushSubscription:
    """Insert, or replace the keys of, ``contact_id``'s subscription of ``endpoint`` (the
    other contacts of the endpoint keep theirs, with the new keys); return the stored row."""
    conn.execute("UPDATE push_subscriptions SET p256dh = ?, auth = ? WHERE endpoint = ?",
                 (p256dh, auth, endpoint))
    row = conn.execute(
        "INSERT INTO push_subscriptions (contact_id, endpoint, p256dh, auth, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (contact_id, endpoint) DO UPDATE SET"
        " p256dh = excluded.p256dh, auth = excluded.auth"
        " RETURNING *",
        (contact_id, endpoint, p256dh, auth, ts(now)),
    ).fetchone()
    return _from_row(row)


def list_subscriptions(conn: sqlite3.Connection,
                       contact_id: str | None = None) -> list[PushSubscription]:
    """Every subscription (of one contact when given), oldest first."""
    if contact_id is None:
        rows = conn.execute("SELECT * FROM push_subscriptions ORDER BY id").fetchall()
    else:
        rows = conn.execute("SELECT * FROM push_subscriptions WHERE contact_id = ? ORDER BY id",
                            (contact_id,)).fetchall()
    return [_from_row(row) for row in rows]


def delete_subscription(conn: sqlite3.Connection, subscription_id: int) -> bool:
    """Remove one subscription by id; True when it existed."""
    cursor = conn.execute("DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,))
    return cursor.rowcount == 1


def delete_subscription_by_endpoint(conn: sqlite3.Connection, endpoint: str) -> bool:
    """Remove every subscription of ``endpoint`` (the push service said it is gone: for
    every contact it was registered for)."""
    cursor = conn.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,))
    return cursor.rowcount >= 1
