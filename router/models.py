"""The data that flows through Tocsin, as plain frozen dataclasses.

These types are the contracts between the stages (intake → rules → incidents → notices
→ outbox → dispatcher → channel adapters). They carry no behaviour beyond small conveniences.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

__all__ = [
    "CHANNEL_KINDS",
    "NO_ATTRIBUTES",
    "SUBJECT_MAX_CHARS",
    "AckPolicy",
    "Alert",
    "AlertStatus",
    "Attributes",
    "Contact",
    "Delivery",
    "DeliveryStatus",
    "EscalationTier",
    "IncidentPolicy",
    "IntakeRecord",
    "NewDelivery",
    "OutboundMessage",
    "Phase",
    "Receipt",
    "RenderedMessage",
    "RouteDecision",
    "one_line",
]

AlertStatus = Literal["firing", "resolved"]
#: Delivery phases: the lifecycle of an incident. ``firing`` is the first notice,
#: ``update`` a change (alerts joined or resolved), ``follow_up`` "it takes longer than
#: announced", ``resolved`` the end, ``summary`` one message replacing notices held by
#: quiet hours when the incident ended meanwhile, ``storm`` one message for many incidents;
#: acknowledgements (``ack:`` routes): ``reminder`` a re-send to a recipient who has not
#: answered, ``escalation`` the first notice of an escalation tier's contact,
#: ``acknowledged`` "Acknowledged by Alice" to the others paged, ``reply`` an SMS answer
#: to an inbound reply (the choices of an ambiguous one).
Phase = Literal["firing", "update", "follow_up", "resolved", "summary", "storm", "reminder",
                "escalation", "acknowledged", "reply"]
#: ``cancelled``: a held (quiet-hours) delivery superseded before it was sent.
DeliveryStatus = Literal["pending", "sent", "failed", "cancelled"]
#: Channel names known to the rules (cross-reference checks) and to the dispatcher;
#: ``adapters.registry`` builds a channel for each configured one.
CHANNEL_KINDS: frozenset[str] = frozenset({"email", "sms", "topic", "push"})


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


class Attributes(Mapping[str, str]):
    """A contact's extra columns (``service``, ``plan``...): a read-only mapping.

    The column names are one tuple shared by every contact of a source, the values one
    tuple per contact (a customer list holds 100,000 of them: no dict each). Hashable.
    """

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...] = (), values: tuple[str, ...] = ()) -> None:
        if len(names) != len(values):
            raise ValueError("attribute names and values differ in length")
        self._names = names
        self._values = values

    def __getitem__(self, key: str) -> str:
        try:
            return self._values[self._names.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __hash__(self) -> int:
        return hash((self._names, self._values))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attributes):
            return self._names == other._names and self._values == other._values
        return isinstance(other, Mapping) and dict(self) == dict(other)

    def __repr__(self) -> str:
        return f"Attributes({dict(self)!r})"


NO_ATTRIBUTES: Final = Attributes()


@dataclass(frozen=True, slots=True)
class Contact:
    """A person (or mailbox) that can receive messages.

    ``attributes``: the extra columns of its contact source (``select``, templates);
    ``tags``: its ``tags`` column; ``channels``: the only channels it accepts (its
    ``channels`` column), None for every channel it has an address for.
    """

    id: str
    name: str
    email: str | None = None
    phone: str | None = None  # E.164
    locale: str = "en"
    timezone: str = "UTC"
    topic: str | None = None  # SNS topic ARN (channel "topic"): the contact is a topic
    quiet_hours: str | None = None  # a quiet_hours policy name; "none": never quiet
    attributes: Mapping[str, str] = NO_ATTRIBUTES
    tags: tuple[str, ...] = ()
    channels: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class EscalationTier:
    """One tier of an ack policy's ``escalate`` list: who is paged ``after_s`` seconds
    after the first notice when nobody has answered."""

    after_s: float
    audiences: tuple[str, ...]
    channels: tuple[tuple[str, tuple[str, ...]], ...] = ()  # severity|"default" -> channels


@dataclass(frozen=True, slots=True)
class AckPolicy:
    """A route's ``ack:`` block: the notices ask for an answer.

    ``first``: one answer stops re-sends and escalation for everyone (on-call); ``each``:
    every recipient must answer (read receipts). Unanswered recipients get a ``reminder``
    every ``resend_after_s`` (at most ``max_resends``); each ``escalate`` tier pages its
    audiences after its delay; ``notify_on_ack`` tells the others who answered.
    """

    mode: Literal["first", "each"] = "first"
    resend_after_s: float | None = None
    max_resends: int = 2
    escalate: tuple[EscalationTier, ...] = ()
    notify_on_ack: bool = True


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """How a route's incidents live: timers, follow-ups, quiet hours, time intervals.

    Defaults are Alertmanager's (group_wait 30s, group_interval 5m, repeat_interval 4h).
    ``break_quiet_hours`` maps a severity (or ``default``) to whether it may be sent
    during a recipient's quiet hours.
    """

    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 14400.0
    follow_up_after_s: float | None = None
    max_follow_ups: int = 3
    break_quiet_hours: tuple[tuple[str, bool], ...] = (("critical", True), ("default", False))
    resolved_during_quiet_hours: Literal["summary", "drop"] = "summary"
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    ack: AckPolicy | None = None  # None: the notices ask for no answer

    def breaks_quiet_hours(self, severity: str) -> bool:
        """Whether a notice of ``severity`` may be sent during quiet hours."""
        table = dict(self.break_quiet_hours)
        return table.get(severity, table.get("default", False))


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What one matched route decided for one alert."""

    # The route's identity: its name, else its matchers path ('{}/{team="db"}'); never its
    # position, so it survives edits of the tree around it (docs/rules.md "Route identity").
    route_id: str
    route_name: str | None  # the optional `name:` given in the rule file
    severity: str
    audiences: tuple[str, ...]
    channels: tuple[str, ...]  # channels for this severity, in preference order
    template: str
    group_by: tuple[str, ...]
    group_by_all: bool  # group_by: ['...']
    owner: str | None = None
    policy: IncidentPolicy = field(default_factory=IncidentPolicy)
    # Per-recipient channel fallback: {"sms": "email"} plans an email to the same contact
    # when its SMS fails permanently.
    fallback: Mapping[str, str] = field(default_factory=dict)


#: The longest subject of a message, in characters: one line (an e-mail Subject stays
#: far under RFC 5322's 998-byte line limit, a push title fits its 4 KB payload).
SUBJECT_MAX_CHARS: Final = 200


def one_line(subject: str, max_chars: int = SUBJECT_MAX_CHARS) -> str:
    """``subject`` on one line (runs of whitespace become one space), cut with an ellipsis."""
    line = " ".join(subject.split())
    if len(line) <= max_chars:
        return line
    return line[: max_chars - 1].rstrip() + "…"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A message rendered for one channel and locale.

    The subject is capped here, whoever builds the message (templates, render-failure
    placeholders): longer than :data:`SUBJECT_MAX_CHARS`, it becomes :func:`one_line`.
    """

    subject: str
    text: str
    html: str | None = None

    def __post_init__(self) -> None:
        if len(self.subject) > SUBJECT_MAX_CHARS:
            object.__setattr__(self, "subject", one_line(self.subject))


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
    # The delivery to plan for the same contact if this one fails permanently.
    fallback: NewDelivery | None = None
    # With ``failed_reason``: the dead-letter reason, ``render`` (the template failed) or
    # ``plan`` (planning the recipient's notice failed).
    dead_letter_reason: str = "render"


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
    segments: int | None = None  # SMS parts billed
    fallback_of: int | None = None  # id of the delivery this one replaces
    # Set on dead letters (status failed): "permanent", "deadline" or "unconfigured".
    dead_letter_reason: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a channel adapter is asked to send.

    Adapters never see the outbox: the push channel alone reads (and prunes) the push
    subscriptions of the recipient, through the narrow ``SubscriptionStore`` protocol.
    """

    delivery_id: int
    idempotency_key: str
    channel: str
    recipient: str
    severity: str
    locale: str
    message: RenderedMessage
    audience: str = ""  # the audience the recipient was planned from (sender settings)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a channel adapter returns on success."""

    provider_id: str | None = None
    detail: str = ""
    segments: int | None = None  # SMS parts billed, when the channel counts them
