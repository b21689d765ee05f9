"""Conversions between Tocsin's dataclasses and the PostgreSQL store's rows.

Rows are read as dicts (``psycopg.rows.dict_row``). Timestamps are ``TIMESTAMPTZ``,
read in a session whose time zone is UTC: aware UTC datetimes, microseconds kept, so a
value written comes back equal. Alerts and envelopes are the JSON text of the SQLite
codec (:mod:`router.store.sqlite.codec`): one format for both stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from router.models import Delivery, IntakeRecord
from router.store.sqlite.codec import alert_from_json, alert_to_json, meta_to_json, ts
from router.store.sqlite.codec import delivery_from_row as sqlite_delivery_from_row

__all__ = [
    "alert_to_json",
    "delivery_from_row",
    "intake_from_row",
    "meta_to_json",
    "text_opt",
    "utc",
    "utc_opt",
]

Row = dict[str, Any]


def utc(value: datetime) -> datetime:
    """A TIMESTAMPTZ as read: an aware datetime, normalised to UTC."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def utc_opt(value: datetime | None) -> datetime | None:
    """:func:`utc` that lets ``None`` through."""
    return None if value is None else utc(value)


def text_opt(value: datetime | None) -> str | None:
    """A TIMESTAMPTZ as the SQLite store's text (the dict-shaped API rows carry text)."""
    return None if value is None else ts(value)


def intake_from_row(row: Row) -> tuple[int, IntakeRecord]:
    """``(id, IntakeRecord)`` from an intake row."""
    return int(row["id"]), IntakeRecord(
        source=row["source"], received_at=utc(row["received_at"]),
        alert=alert_from_json(row["alert"]), meta=orjson.loads(row["meta"]))


def delivery_from_row(row: Row) -> Delivery:
    """A :class:`Delivery` from a deliveries row (the one mapping, with this dialect's
    TIMESTAMPTZ values)."""
    return sqlite_delivery_from_row(row, when=utc, when_opt=utc_opt)
