"""Conversions between Tocsin's dataclasses and the PostgreSQL store's rows.

Rows are read as dicts (``psycopg.rows.dict_row``). Timestamps are ``TIMESTAMPTZ``,
read in a session whose time zone is UTC: aware UTC datetimes, microseconds kept, so a
value written comes back equal. Alerts and envelopes are the JSON text of the SQLite
codec (:mod:`router.store.sqlite.codec`): one format for both stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson

from router.models import Delivery, DeliveryStatus, IntakeRecord, Phase, RenderedMessage
from router.store.sqlite.codec import alert_from_json, alert_to_json, meta_to_json, ts

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
    """A :class:`Delivery` from a deliveries row."""
    return Delivery(
        id=int(row["id"]),
        idempotency_key=row["idempotency_key"],
        incident_key=row["incident_key"],
        fingerprint=row["fingerprint"],
        route_id=row["route_id"],
        phase=cast(Phase, row["phase"]),
        channel=row["channel"],
        recipient=row["recipient"],
        contact_id=row["contact_id"],
        audience=row["audience"],
        severity=row["severity"],
        locale=row["locale"],
        message=RenderedMessage(subject=row["subject"], text=row["text"], html=row["html"]),
        status=cast(DeliveryStatus, row["status"]),
        attempts=int(row["attempts"]),
        created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]),
        next_attempt_at=utc_opt(row["next_attempt_at"]),
        deadline_at=utc(row["deadline_at"]),
        sent_at=utc_opt(row["sent_at"]),
        last_error=row["last_error"],
        provider_id=row["provider_id"],
        segments=row["segments"],
        fallback_of=row["fallback_of"],
        dead_letter_reason=row["dead_letter_reason"],
    )
