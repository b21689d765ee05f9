"""Web Push subscriptions: the browser's ``PushSubscription`` stored per contact.

A subscription is identified by its ``endpoint`` URL (unique): registering the same
endpoint again (the browser re-subscribed, or moved to another contact) replaces its keys
and owner. The push channel removes a subscription when the push service answers 404 or
410 (the browser unsubscribed or the subscription expired).

The SQL lives here as plain functions on a connection; :class:`~router.store.sqlite.
SqliteStore` runs them in its writer / reader threads.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from router.store.base import PushSubscription
from router.store.codec import parse_ts, ts

__all__ = [
    "PushSubscription",
    "SubscriptionError",
    "delete_subscription",
    "delete_subscription_by_endpoint",
    "list_subscriptions",
    "parse_subscription",
    "upsert_subscription",
]


class SubscriptionError(ValueError):
    """A PushSubscription JSON that cannot be used (the API answers 400 with it)."""


def _b64url_len(value: str) -> int:
    padded = value + "=" * (-len(value) % 4)
    try:
        return len(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return -1


def parse_subscription(data: object) -> tuple[str, str, str]:
    """``(endpoint, p256dh, auth)`` from a ``PushSubscription.toJSON()`` object.

    Raises SubscriptionError naming the field when the shape or a key is wrong.
    """
    if not isinstance(data, Mapping):
        raise SubscriptionError("subscription must be an object with endpoint and keys")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionError("subscription.endpoint must be a URL string")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise SubscriptionError("subscription.endpoint must be an http(s) URL")
    keys = data.get("keys")
    if not isinstance(keys, Mapping):
        raise SubscriptionError("subscription.keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or _b64url_len(p256dh) != 65:
        raise SubscriptionError("subscription.keys.p256dh must be a base64url P-256 public "
                                "key (65 bytes)")
    if not isinstance(auth, str) or _b64url_len(auth) != 16:
        raise SubscriptionError("subscription.keys.auth must be a base64url 16-byte secret")
    return endpoint, p256dh, auth


def _from_row(row: sqlite3.Row) -> PushSubscription:
    return PushSubscription(id=int(row["id"]), contact_id=row["contact_id"],
                            endpoint=row["endpoint"], p256dh=row["p256dh"], auth=row["auth"],
                            created_at=parse_ts(row["created_at"]))


def upsert_subscription(conn: sqlite3.Connection, contact_id: str, endpoint: str,
                        p256dh: str, auth: str, now: datetime) -> PushSubscription:
    """Insert, or replace keys and owner of the same endpoint; return the stored row."""
    row = conn.execute(
        "INSERT INTO push_subscriptions (contact_id, endpoint, p256dh, auth, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET"
        " contact_id = excluded.contact_id, p256dh = excluded.p256dh, auth = excluded.auth"
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
    """Remove the subscription of ``endpoint`` (the push service said it is gone)."""
    cursor = conn.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,))
    return cursor.rowcount == 1
