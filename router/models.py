"""The data that flows through Tocsin, as plain frozen dataclasses.

These types are the contracts between the stages (intake → rules → planner → outbox →
dispatcher → channel adapters). They carry no behaviour beyond small conveniences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "Alert",
    "AlertStatus",
    "Contact",
    "Delivery",
    "DeliveryStatus",
    "IntakeRecord",
    "NewDelivery",
    "OutboundMessage",
    "Phase",
    "Receipt",
    "RenderedMessage",
    "RouteDecision",
]

AlertStatus = Literal["firing", "resolved"]
Phase = Literal["firing", "resolved"]
DeliveryStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, normalised from any source. ``fingerprint`` is recomputed from labels."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None  # None when the sender gave the Go zero time or nothing
    generator_url: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """An accepted alert as persisted in the intake log before the sender is answered."""

    source: str  # "alertmanager", "kafka", ...
    received_at: datetime
    alert: Alert
    # Context from the envelope: receiver, groupKey, externalURL, ... (strings only)
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Contact:
    """A person (or mailbox) that can receive messages."""

    id: str
    name: str
    email: str | None = None
    phone: str | None = None  # E.164
    locale: str = "en"
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What one matched route decided for one alert."""

    route_id: str  # stable path in the tree, e.g. "root", "root/0", "root/0/2"
    route_name: str | None  # the optional `name:` given in the rule file
    severity: str
    audiences: tuple[str, ...]
    channels: tuple[str, ...]  # channels for this severity, in preference order
    template: str
    group_by: tuple[str, ...]
    group_by_all: bool  # group_by: ['...']
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message rendered for one channel and locale."""

    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A planned delivery, before it is written to the outbox."""

    idempotency_key: str
    incident_key: str  # group key or alert fingerprint the message is about
    fingerprint: str
    route_id: str
    phase: Phase
    channel: str
    recipient: str  # full address (email, E.164 phone, topic ARN, ...)
    contact_id: str
    audience: str
    severity: str
    locale: str
    message: RenderedMessage
    # When set, the delivery is recorded directly as ``failed`` with this reason (e.g. the
    # template failed to render): visible in the history instead of silently lost.
    failed_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A row of the outbox, as read back from the store."""

    id: int
    idempotency_key: str
    incident_key: str
    fingerprint: str
    route_id: str
    phase: Phase
    channel: str
    recipient: str
    contact_id: str
    audience: str
    severity: str
    locale: str
    message: RenderedMessage
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    deadline_at: datetime
    sent_at: datetime | None
    last_error: str | None
    provider_id: str | None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a channel adapter is asked to send. Adapters never see the store."""

    delivery_id: int
    idempotency_key: str
    channel: str
    recipient: str
    severity: str
    locale: str
    message: RenderedMessage


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a channel adapter returns on success."""

    provider_id: str | None = None
    detail: str = ""
