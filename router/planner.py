"""The planner: turns routing decisions for one alert into deliveries for the outbox.

For each decision → each audience → each contact → each channel of the decision that
the contact can be reached on, render the message and build one :class:`NewDelivery`
with an idempotency key. Pure apart from logging: no I/O, no clock.

The idempotency key is ``sha256(route_id, fingerprint, startsAt, phase, channel,
recipient)``: the same alert state received twice (Alertmanager HA pair, a retried
webhook, a re-processed intake row after a crash) maps to the same key and the outbox
ignores the duplicate; a resolve followed by a re-fire has a new ``startsAt`` and so
notifies again.

The running service plans per incident (:mod:`router.incidents.flush`, which shares
:func:`recipient_address` and the audience view with this module); this per-alert
planner is what rule test files and ``tocsin rules test --labels`` use to show who gets
which message for one alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from router.masking import mask_address
from router.models import (
    Alert,
    Contact,
    IntakeRecord,
    NewDelivery,
    Phase,
    RenderedMessage,
    RouteDecision,
)
from router.rules import RenderError

__all__ = ["AudienceView", "RulesView", "idempotency_key", "plan", "recipient_address"]

_log = structlog.get_logger(__name__)


class AudienceView(Protocol):
    """What the planner needs of an audience."""

    @property
    def contacts(self) -> Sequence[Contact]: ...


class RulesView(Protocol):
    """What the planner needs of a rule set (``router.rules.RuleSet`` satisfies it)."""

    @property
    def audiences(self) -> Mapping[str, AudienceView]: ...

    def render(
        self,
        decision: RouteDecision,
        alert: Alert,
        contact: Contact,
        channel: str,
        phase: Phase,
        meta: Mapping[str, str],
    ) -> RenderedMessage: ...


#: How to address a contact on each channel (None: the contact has no such address).
_ADDRESS_OF: Mapping[str, Callable[[Contact], str | None]] = {
    "email": lambda contact: contact.email,
    "sms": lambda contact: contact.phone,  # E.164, normalised at load
    "topic": lambda contact: contact.topic,  # an SNS topic ARN
    # Web Push goes to every browser subscription of the contact (looked up at send
    # time); a topic is not a person and has no browser.
    "push": lambda contact: contact.id if contact.topic is None else None,
}


def recipient_address(contact: Contact, channel: str) -> str | None:
    """The contact's address on ``channel``, or None if it cannot receive it."""
    address_of = _ADDRESS_OF.get(channel)
    return None if address_of is None else address_of(contact)


def idempotency_key(
    route_id: str, fingerprint: str, starts_at: datetime, phase: Phase, channel: str,
    recipient: str,
) -> str:
    """The outbox key of one notification (see module docstring)."""
    parts = (
        route_id,
        fingerprint,
        starts_at.astimezone(UTC).isoformat(timespec="microseconds"),
        phase,
        channel,
        recipient,
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def plan(
    record: IntakeRecord, decisions: Sequence[RouteDecision], rules: RulesView
) -> list[NewDelivery]:
    """Every delivery the decisions ask for, one per (route, recipient, channel)."""
    alert = record.alert
    phase: Phase = alert.status
    planned: list[NewDelivery] = []
    for decision in decisions:
        seen: set[tuple[str, str]] = set()  # (channel, recipient) within this decision
        for audience_name in decision.audiences:
            audience = rules.audiences.get(audience_name)
            if audience is None:
                _log.warning("planner.unknown_audience", audience=audience_name,
                             route_id=decision.route_id, fingerprint=alert.fingerprint)
                continue
            for contact in audience.contacts:
                for channel in decision.channels:
                    recipient = recipient_address(contact, channel)
                    if recipient is None:
                        _log.warning("planner.contact_unreachable", contact_id=contact.id,
                                     channel=channel, audience=audience_name,
                                     route_id=decision.route_id,
                                     fingerprint=alert.fingerprint)
                        continue
                    if (channel, recipient) in seen:
                        continue
                    seen.add((channel, recipient))
                    delivery = _delivery(record, decision, audience_name, contact,
                                         channel, recipient, phase, rules)
                    planned.append(_with_fallback(delivery, record, decision, audience_name,
                                                  contact, phase, rules))
    return planned


def _with_fallback(
    delivery: NewDelivery, record: IntakeRecord, decision: RouteDecision, audience: str,
    contact: Contact, phase: Phase, rules: RulesView,
) -> NewDelivery:
    """``delivery`` with its pre-rendered fallback (``route.fallback``), if the contact
    can be reached on the fallback channel. The store inserts it only if ``delivery``
    fails permanently."""
    channel = decision.fallback.get(delivery.channel)
    if channel is None:
        return delivery
    recipient = recipient_address(contact, channel)
    if recipient is None:
        return delivery
    fallback = _delivery(record, decision, audience, contact, channel, recipient, phase, rules)
    return replace(delivery, fallback=fallback)


def _delivery(
    record: IntakeRecord, decision: RouteDecision, audience: str, contact: Contact,
    channel: str, recipient: str, phase: Phase, rules: RulesView,
) -> NewDelivery:
    alert = record.alert
    failed_reason: str | None = None
    try:
        message = rules.render(decision, alert, contact, channel, phase, record.meta)
    except RenderError as exc:
        failed_reason = f"template '{decision.template}' failed to render for {channel}: {exc}"
        message = RenderedMessage(subject=f"[render failed] {alert.labels.get('alertname', '')}",
                                  text="")
        _log.error("planner.render_failed", error=str(exc), template=decision.template,
                   channel=channel, recipient=mask_address(recipient),
                   route_id=decision.route_id, fingerprint=alert.fingerprint)
    return NewDelivery(
        idempotency_key=idempotency_key(decision.route_id, alert.fingerprint, alert.starts_at,
                                        phase, channel, recipient),
        incident_key=alert.fingerprint,
        fingerprint=alert.fingerprint,
        route_id=decision.route_id,
        phase=phase,
        channel=channel,
        recipient=recipient,
        contact_id=contact.id,
        audience=audience,
        severity=decision.severity,
        locale=contact.locale,
        message=message,
        failed_reason=failed_reason,
    )
