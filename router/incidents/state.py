"""The incident records exchanged between the engine (pure) and the store.

Plain dataclasses: an :class:`Incident` with its :class:`IncidentAlert` rows, the
notification log per recipient (:class:`RecipientLog`) and the timeline
(:class:`TimelineEvent`). JSON helpers encode the route decision snapshot an incident
keeps, so that a rule reload never changes how an open incident is notified.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from router.models import AckPolicy, AlertStatus, EscalationTier, IncidentPolicy, RouteDecision

__all__ = [
    "HeldNotice",
    "Incident",
    "IncidentAck",
    "IncidentAlert",
    "IncidentState",
    "RecipientLog",
    "TimelineEvent",
    "decision_from_json",
    "decision_to_json",
]

IncidentState = Literal["open", "resolved"]


@dataclass(frozen=True, slots=True)
class IncidentAlert:
    """One alert of an incident, as last received."""

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    first_seen_at: datetime
    last_seen_at: datetime
    sender: str = ""  # who reported it first (Alertmanager external URL, source)
    inhibited: bool = False


@dataclass(frozen=True, slots=True)
class IncidentAck:
    """Who acknowledged an incident, when and how (``channel``: sms, link, api, cli).

    ``by_id`` is the contact id of a paged contact, None for an operator named ``by_name``.
    """

    at: datetime
    by_name: str
    channel: str
    by_id: str | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident row.

    Acknowledgements (routes with ``ack:``): ``ack`` is set once the incident is
    acknowledged (mode ``first``: the first answer; mode ``each``: the last missing one,
    or an operator); ``escalation_tier`` counts the escalation tiers paged so far;
    ``ack_notified`` says the ``acknowledged`` notices were planned.
    """

    id: str
    route_id: str
    group_key: str
    group_labels: Mapping[str, str]
    state: IncidentState
    decision: RouteDecision
    opened_at: datetime
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    due_at: datetime | None
    flushed_at: datetime | None
    first_notice_at: datetime | None
    follow_ups: int
    version: int
    meta: Mapping[str, str] = field(default_factory=dict)
    ack: IncidentAck | None = None
    escalation_tier: int = 0
    ack_notified: bool = False


@dataclass(frozen=True, slots=True)
class HeldNotice:
    """A delivery held by quiet hours that may still be replaced (pending, not claimed)."""

    delivery_id: int
    phase: str
    cancellable: bool


@dataclass(frozen=True, slots=True)
class RecipientLog:
    """The notification log of one recipient of one incident (Alertmanager's nflog)."""

    audience: str
    contact_id: str
    firing: frozenset[str]
    resolved: frozenset[str]
    notified_at: datetime
    seq: int
    # (channel, address, locale) the first notice used: later notices reuse them.
    channels: tuple[tuple[str, str, str], ...]
    # Phases of the notices planned so far that actually went out or will (not cancelled).
    announced: bool  # a first notice (or storm summary) reached or will reach them
    held: tuple[HeldNotice, ...] = ()
    # Their first notices (phase firing) still pending outside quiet hours: queued or
    # waiting for a retry (``cancellable``: not leased, so not being sent right now).
    # Loaded with the incident, never stored on the log: a resolution before they went
    # out cancels them for one ``summary``.
    queued: tuple[HeldNotice, ...] = ()
    # Acknowledgements: the first notice that asked them for an answer (None: never
    # asked); when the last notice asking reaches them (after the quiet hours holding it:
    # the next reminder counts from there); their answer; the reminders sent so far.
    asked_at: datetime | None = None
    last_asked_at: datetime | None = None
    answered_at: datetime | None = None
    reminders: int = 0

    @property
    def waiting(self) -> bool:
        """Asked for an answer and not answered yet."""
        return self.asked_at is not None and self.answered_at is None


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One line of an incident's timeline."""

    at: datetime
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def decision_to_json(decision: RouteDecision) -> str:
    """Serialise a route decision (policy included) for the incident row."""
    data = asdict(decision)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _ack_policy_from_json(data: dict[str, Any]) -> AckPolicy:
    tiers = tuple(
        EscalationTier(after_s=float(t["after_s"]), audiences=tuple(t["audiences"]),
                       channels=tuple((str(sev), tuple(chs)) for sev, chs in t["channels"]))
        for t in data.get("escalate", ()))
    return AckPolicy(**{**data, "escalate": tiers})


def decision_from_json(text: str) -> RouteDecision:
    """Inverse of :func:`decision_to_json`."""
    data: dict[str, Any] = json.loads(text)
    policy = data.pop("policy", None) or {}
    for key in ("break_quiet_hours",):
        if key in policy:
            policy[key] = tuple(tuple(item) for item in policy[key])
    for key in ("mute_time_intervals", "active_time_intervals"):
        if key in policy:
            policy[key] = tuple(policy[key])
    if policy.get("ack") is not None:
        policy["ack"] = _ack_policy_from_json(policy["ack"])
    for key in ("audiences", "channels", "group_by"):
        data[key] = tuple(data[key])
    return RouteDecision(**data, policy=IncidentPolicy(**policy))

