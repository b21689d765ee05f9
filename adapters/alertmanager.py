"""Inbound adapter: the Alertmanager webhook body (version 4, and what other senders send).

Lenient where senders differ, strict where routing depends on it:

- ignored or optional: unknown fields, ``version`` (missing, ``"4"``, ``"3"``, integer
  ``0``), ``receiver``/``status``/``groupKey`` (``groupKey`` may be an integer),
  per-alert ``status`` (derived from ``endsAt`` when missing), ``annotations``,
  ``generatorURL`` (``""`` or missing), ``endsAt`` (missing, ``""`` or the Go zero time
  ``0001-01-01T00:00:00Z`` all mean "no end"), ``truncatedAlerts``, ``fingerprint``
  (never trusted: recomputed from the labels with :func:`router.fingerprint.fingerprint`).
- strict: the body is a JSON object; ``alerts`` is a non-empty list of objects; each
  ``labels`` is a non-empty object of string → string; ``startsAt``/``endsAt`` are
  RFC 3339 times with a zone offset (``startsAt`` missing → the time we received it);
  ``status`` if given is ``firing`` or ``resolved``; times must stay representable once
  converted to UTC (``9999-12-31T23:00:00-01:00`` does not).
- bounded (optional :class:`WebhookLimits`): alerts per body, labels per alert, bytes of
  one alert's labels and of its annotations. Over a limit raises a WebhookPayloadError
  with status 413 naming the limit (its config key) and where it was exceeded.

Anything else raises :class:`WebhookPayloadError` (a PayloadError, status 400) with the location
as a dotted path (``alerts.0.labels.severity``) and the problem in plain words.
Parsing uses pydantic's ``model_validate_json`` on the raw bytes: one pass in Rust.
:func:`parse_webhook` is thread-safe (its one shared state, the fingerprint memo, is
locked); note that pydantic holds the GIL while it validates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic_core import from_json

from router.bytecache import ENTRY_OVERHEAD, LockedByteLRU, labels_bytes
from router.errors import WebhookPayloadError
from router.fingerprint import fingerprint
from router.models import Alert, AlertStatus, IntakeRecord

__all__ = ["SOURCE", "WebhookLimits", "WebhookPayloadError", "count_alerts", "parse_webhook"]

SOURCE = "alertmanager"

@dataclass(frozen=True, slots=True)
class WebhookLimits:
    """Bounds on one body (``webhook.max_*``); sizes are UTF-8 bytes of names + values."""

    max_alerts: int
    max_labels: int
    max_label_bytes: int
    max_annotation_bytes: int


_Time = Annotated[AwareDatetime, Strict()]
_QUOTEMETA = re.compile(r"\\([\\.+*?()|\[\]{}^$])")


class _AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"] | None = None
    labels: Annotated[dict[str, str], Field(min_length=1)]
    annotations: dict[str, str] | None = None
    startsAt: _Time | None = None
    endsAt: _Time | Literal[""] | None = None
    generatorURL: str | None = None


class _WebhookIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    alerts: Annotated[list[_AlertIn], Field(min_length=1)]
    version: str | int | None = None
    receiver: str | None = None
    groupKey: str | int | None = None
    externalURL: str | None = None
    truncatedAlerts: int | None = None


def parse_webhook(body: bytes | str, *, received_at: datetime,
                  limits: WebhookLimits | None = None) -> list[IntakeRecord]:
    """Parse one webhook body into intake records (one per alert, in payload order).

    ``received_at`` (aware, UTC) stands in for a missing ``startsAt`` and decides the
    status of alerts that carry none (``endsAt`` in the past → resolved).
    Raises WebhookPayloadError (a PayloadError, status 400, or 413 over one of
    ``limits``) with a dotted ``location`` when the body is unacceptable.
    """
    try:
        payload = _WebhookIn.model_validate_json(body)
    except ValidationError as exc:
        raise _payload_error(exc) from None
    if limits is not None:
        # (a str body: at most 4 UTF-8 bytes per character)
        size = len(body) if isinstance(body, bytes) else 4 * len(body)
        _check_limits(payload, limits, body_size=size)
    meta = _meta(payload)
    records: list[IntakeRecord] = []
    for index, item in enumerate(payload.alerts):
        starts_at = (_utc(item.startsAt, index, "startsAt") if item.startsAt is not None
                     else received_at)
        ends_at = item.endsAt if isinstance(item.endsAt, datetime) else None
        if ends_at is not None:
            # Go's zero time means "not resolved"
            ends_at = None if ends_at.year <= 1 else _utc(ends_at, index, "endsAt")
        status: AlertStatus
        if item.status is not None:
            status = item.status
        else:
            status = "resolved" if ends_at is not None and ends_at <= received_at else "firing"
        alert = Alert(
            labels=item.labels,
            annotations=item.annotations or {},
            status=status,
            starts_at=starts_at,
            ends_at=ends_at,
            generator_url=item.generatorURL or "",
            fingerprint=_fingerprint(item.labels),
        )
        records.append(
            IntakeRecord(source=SOURCE, received_at=received_at, alert=alert, meta=meta)
        )
    return records


def _utc(value: datetime, index: int, field: str) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-01:00 is past year 9999 in UTC
        location = f"alerts.{index}.{field}"
        raise WebhookPayloadError(
            f"{location} is out of range: it must fall between years 1 and 9999 in UTC",
            reason="invalid_payload", location=location,
        ) from None


def _check_limits(payload: _WebhookIn, limits: WebhookLimits, *, body_size: int) -> None:
    count = len(payload.alerts)
    if count > limits.max_alerts:
        raise WebhookPayloadError(
            f"too many alerts: {count} exceeds the limit of {limits.max_alerts} per request "
            "(webhook.max_alerts); set max_alerts in the Alertmanager webhook_config",
            reason="too_many_alerts", location="alerts", status=413,
        )
    # No alert's labels (or annotations) can be larger than the whole body: a body within
    # both byte limits skips measuring them (the usual, small Alertmanager notification).
    measure = body_size > min(limits.max_label_bytes, limits.max_annotation_bytes)
    for index, item in enumerate(payload.alerts):
        labels = item.labels
        if len(labels) > limits.max_labels:
            raise WebhookPayloadError(
                f"alerts.{index}.labels has {len(labels)} labels: the limit is "
                f"{limits.max_labels} (webhook.max_labels)",
                reason="too_many_labels", location=f"alerts.{index}.labels", status=413,
            )
        if not measure:
            continue
        size = _size(labels, limits.max_label_bytes)
        if size > limits.max_label_bytes:
            raise WebhookPayloadError(
                f"alerts.{index}.labels are {size} bytes: the limit is "
                f"{limits.max_label_bytes} (webhook.max_label_bytes)",
                reason="labels_too_large", location=f"alerts.{index}.labels", status=413,
            )
        if item.annotations:
            size = _size(item.annotations, limits.max_annotation_bytes)
            if size > limits.max_annotation_bytes:
                raise WebhookPayloadError(
                    f"alerts.{index}.annotations are {size} bytes: the limit is "
                    f"{limits.max_annotation_bytes} (webhook.max_annotation_bytes)",
                    reason="annotations_too_large", location=f"alerts.{index}.annotations",
                    status=413,
                )


def _size(items: dict[str, str], limit: int) -> int:
    """UTF-8 bytes of the names and values (encoded only when they may exceed ``limit``)."""
    chars = sum(map(len, items)) + sum(map(len, items.values()))
    if chars * 4 <= limit:  # a character is at most 4 bytes in UTF-8: surely within
        return chars
    return sum(len(name.encode()) + len(value.encode()) for name, value in items.items())



def _pairs_bytes(key: tuple[tuple[str, str], ...], _value: str) -> int:
    return labels_bytes(key) + ENTRY_OVERHEAD


#: Label set → fingerprint, bounded in bytes (``memory.cache_bytes``, router/bytecache.py).
#: Locked: :func:`parse_webhook` runs on the event loop and, for large bodies, in worker
#: threads (router/http/webhook.py) at the same time.
_FINGERPRINTS: LockedByteLRU[tuple[tuple[str, str], ...], str] = LockedByteLRU(
    _pairs_bytes, share="fingerprints")


def _fingerprint(labels: dict[str, str]) -> str:
    """:func:`router.fingerprint.fingerprint`, memoised per label set.

    Alertmanager re-sends the same label sets over and over (repeat_interval, every
    group flush); the pure-Python FNV-1a costs ~17 µs per 10-label alert, a dict lookup
    under 1 µs. The key keeps the sender's label order (a different order is only a miss).
    The memo is bounded in bytes, least recently used first out.
    """
    key = tuple(labels.items())
    value = _FINGERPRINTS.get(key)
    if value is None:
        value = fingerprint(labels)
        _FINGERPRINTS.put(key, value)
    return value


def count_alerts(body: bytes | str) -> int:
    """How many alert entries a (possibly invalid) body holds; 0 when it is not countable.

    Used only on the rejection path, to count rejected alerts in metrics.
    """
    try:
        data = from_json(body)
    except ValueError:  # malformed, not UTF-8, or nested deeper than the parser allows
        return 0
    alerts = data.get("alerts") if isinstance(data, dict) else None
    return len(alerts) if isinstance(alerts, list) else 0


def _meta(payload: _WebhookIn) -> dict[str, str]:
    receiver = payload.receiver or ""
    if "\\" in receiver:
        receiver = _QUOTEMETA.sub(r"\1", receiver)  # undo Go's regexp.QuoteMeta
    meta = {
        "receiver": receiver,
        "group_key": "" if payload.groupKey is None else str(payload.groupKey),
        "external_url": payload.externalURL or "",
        "version": "" if payload.version is None else str(payload.version),
    }
    if payload.truncatedAlerts:
        meta["truncated_alerts"] = str(payload.truncatedAlerts)
    return meta


# --------------------------------------------------------------------------- errors

_WORDS: Mapping[str, str] = {
    "missing": "is required",
    "string_type": "must be a string",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "literal_error": "must be 'firing' or 'resolved'",
    "datetime_type": "must be an RFC 3339 time string such as 2024-01-31T12:00:00Z",
    "datetime_parsing": "must be an RFC 3339 time such as 2024-01-31T12:00:00Z",
    "datetime_from_date_parsing": "must be an RFC 3339 time such as 2024-01-31T12:00:00Z",
    "timezone_aware": "must carry a time zone offset (e.g. Z or +02:00)",
}


def _payload_error(exc: ValidationError) -> WebhookPayloadError:
    errors = exc.errors(include_url=False, include_context=True, include_input=True)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first["msg"])
        return WebhookPayloadError(f"malformed JSON: {detail}", reason="malformed_json")
    if kind in ("model_type", "model_attributes_type") and not first["loc"]:
        return WebhookPayloadError(
            "the body must be a JSON object (an Alertmanager webhook payload), "
            f"not {_json_kind(first.get('input'))}",
            reason="not_an_object",
        )
    # A union field (endsAt, version, groupKey) reports one error per branch: keep the
    # first error of each location, and count distinct locations only.
    locations = list(dict.fromkeys(_location(err["loc"]) for err in errors))
    loc = locations[0]
    if loc.rsplit(".", 1)[-1] in ("version", "groupKey"):
        words = f"must be a string or an integer, not {_json_kind(first.get('input'))}"
    else:
        words = _words(kind, loc, first)
    more = len(locations) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    reason = "empty_alerts" if loc == "alerts" and kind == "too_short" else "invalid_payload"
    return WebhookPayloadError(f"{loc} {words}{suffix}", reason=reason, location=loc)


_UNION_FIELDS = frozenset({"endsAt", "version", "groupKey"})


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[-2] in _UNION_FIELDS:
        parts.pop()  # the union branch tag ("datetime", "literal['']", "str", ...)
    return ".".join(parts)


def _words(kind: str, loc: str, err: Any) -> str:
    if kind == "too_short":
        if loc == "alerts":
            return "must contain at least one alert (the list is empty)"
        if loc.endswith("labels"):
            return "must contain at least one label"
        return "must not be empty"
    base = _WORDS.get(kind, str(err["msg"]))
    if kind in ("string_type", "dict_type", "list_type", "model_type", "int_type"):
        base += f", not {_json_kind(err.get('input'))}"
    return base


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
