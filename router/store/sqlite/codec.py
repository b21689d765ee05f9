"""Conversions between Tocsin's dataclasses and the store's columns.

Timestamps are UTC ISO-8601 text with microseconds ("2024-05-01T12:00:00.000000+00:00"):
fixed width so that text comparison in SQL is time comparison, exact round trip, and
readable with the ``sqlite3`` shell.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from router.models import Alert, Delivery, DeliveryStatus, IntakeRecord, Phase, RenderedMessage

__all__ = [
    "alert_from_json",
    "alert_to_json",
    "delivery_from_row",
    "intake_from_row",
    "meta_to_json",
    "parse_ts",
    "parse_ts_opt",
    "ts",
    "ts_opt",
]


def ts(value: datetime) -> str:
    """Encode an aware datetime as fixed-width UTC ISO text."""
    tzinfo = value.tzinfo
    if tzinfo is UTC:  # the common case (clocks and parsers normalise to UTC): no copy
        return value.isoformat(timespec="microseconds")
    if tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def ts_opt(value: datetime | None) -> str | None:
    """:func:`ts` that lets ``None`` through."""
    return None if value is None else ts(value)


def parse_ts(text: str) -> datetime:
    """Decode :func:`ts` text (always aware UTC)."""
    return datetime.fromisoformat(text)


def parse_ts_opt(text: str | None) -> datetime | None:
    """:func:`parse_ts` that lets ``None`` through."""
    return None if text is None else parse_ts(text)


def alert_to_json(alert: Alert) -> str:
    """Serialise an alert for the intake log (orjson: this is on the webhook's hot path)."""
    labels, annotations, ends_at = alert.labels, alert.annotations, alert.ends_at
    return orjson.dumps(
        {
            "labels": labels if type(labels) is dict else dict(labels),
            "annotations": annotations if type(annotations) is dict else dict(annotations),
            "status": alert.status,
            "starts_at": _starts_at_text(alert.starts_at),
            "ends_at": None if ends_at is None else ts(ends_at),
            "generator_url": alert.generator_url,
            "fingerprint": alert.fingerprint,
        }
    ).decode()


_STARTS_AT_TEXT: dict[datetime, str] = {}
_STARTS_AT_TEXT_MAX = 4096


def _starts_at_text(value: datetime) -> str:
    """:func:`ts`, memoised: senders repeat an alert's ``startsAt`` on every resend.

    Equal aware datetimes are the same instant, hence the same UTC text.
    """
    text = _STARTS_AT_TEXT.get(value)
    if text is None:
        if len(_STARTS_AT_TEXT) >= _STARTS_AT_TEXT_MAX:
            _STARTS_AT_TEXT.clear()
        text = _STARTS_AT_TEXT[value] = ts(value)
    return text


def alert_from_json(text: str) -> Alert:
    """Inverse of :func:`alert_to_json`."""
    data: dict[str, Any] = orjson.loads(text)
    return Alert(
        labels=data["labels"],
        annotations=data["annotations"],
        status=data["status"],
        starts_at=parse_ts(data["starts_at"]),
        ends_at=parse_ts_opt(data["ends_at"]),
        generator_url=data["generator_url"],
        fingerprint=data["fingerprint"],
    )


def meta_to_json(meta: Mapping[str, str]) -> str:
    """Serialise an intake record's envelope context."""
    return orjson.dumps(dict(meta)).decode()


def intake_from_row(row: sqlite3.Row) -> tuple[int, IntakeRecord]:
    """``(id, IntakeRecord)`` from an intake row."""
    return int(row["id"]), IntakeRecord(
        source=row["source"],
        received_at=parse_ts(row["received_at"]),
        alert=alert_from_json(row["alert"]),
        meta=json.loads(row["meta"]),
    )


def delivery_from_row(
    row: sqlite3.Row | Mapping[str, Any], *,
    when: Callable[[Any], datetime] = parse_ts,
    when_opt: Callable[[Any], datetime | None] = parse_ts_opt,
) -> Delivery:
    """A :class:`Delivery` from a deliveries row; ``when`` / ``when_opt`` read its times
    (SQLite's ISO text by default; the PostgreSQL store passes its TIMESTAMPTZ reader)."""
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
        created_at=when(row["created_at"]),
        updated_at=when(row["updated_at"]),
        next_attempt_at=when_opt(row["next_attempt_at"]),
        deadline_at=when(row["deadline_at"]),
        sent_at=when_opt(row["sent_at"]),
        last_error=row["last_error"],
        provider_id=row["provider_id"],
        segments=row["segments"],
        fallback_of=row["fallback_of"],
        dead_letter_reason=row["dead_letter_reason"],
    )
