"""What one received alert does to its incident (pure, used by the store's intake job).

For every (alert, matched route) the intake builds an :class:`AlertEvent`; the store
finds the open incident of the event's group and asks :func:`classify` how the alert
compares with what the incident already holds, and :func:`next_flush` when the incident
should next be evaluated:

- the first evaluation of a new incident is ``group_wait`` after it opened;
- after that, a change is evaluated at the next ``group_interval`` tick after the last
  evaluation (never earlier than now, never later than an already planned timer);
- identical alert state (same status, same ``startsAt``) is a duplicate: nothing to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from router.incidents.state import IncidentAlert
from router.models import Alert, IncidentPolicy, RouteDecision

__all__ = [
    "AlertEvent",
    "Change",
    "change_of",
    "classify",
    "effective_status",
    "next_flush",
    "sender_of",
]

Change = Literal["new", "duplicate", "resolved", "refired"]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert as seen by one matched route."""

    decision: RouteDecision
    group_key: str
    group_labels: Mapping[str, str]
    alert: Alert
    source: str
    sender: str
    intake_id: int  # the intake row it comes from (an incident it opens is named after it)
    meta: Mapping[str, str] = field(default_factory=dict)


def sender_of(source: str, meta: Mapping[str, str]) -> str:
    """Who sent an alert: the Alertmanager's external URL when known, else the source."""
    return meta.get("externalURL") or meta.get("external_url") or source


def classify(existing: IncidentAlert | None, alert: Alert, now: datetime) -> Change:
    """How ``alert`` compares with the incident's copy of it."""
    status = effective_status(alert, now)
    if existing is None:
        return change_of(None, False, status)
    return change_of(existing.status, existing.starts_at == alert.starts_at, status)


def change_of(known_status: str | None, same_start: bool,
              status: Literal["firing", "resolved"]) -> Change:
    """:func:`classify` from what the incident holds of the alert: its status (None when
    the incident does not hold it) and whether its ``startsAt`` equals the new one."""
    if known_status is None:
        return "resolved" if status == "resolved" else "new"
    if known_status == status and same_start:
        return "duplicate"
    return "resolved" if status == "resolved" else "refired"


def effective_status(alert: Alert, now: datetime) -> Literal["firing", "resolved"]:
    """``resolved`` when the alert says so or its ``endsAt`` has passed."""
    if alert.status == "resolved" or (alert.ends_at is not None and alert.ends_at <= now):
        return "resolved"
    return "firing"


def next_flush(
    *,
    due_at: datetime | None,
    opened_at: datetime,
    flushed_at: datetime | None,
    policy: IncidentPolicy,
    now: datetime,
) -> datetime:
    """When an incident that just changed should be evaluated (Alertmanager's timers)."""
    if flushed_at is None:
        first = opened_at + timedelta(seconds=policy.group_wait_s)
        return first if due_at is None else min(due_at, first)
    tick = max(now, flushed_at + timedelta(seconds=policy.group_interval_s))
    return tick if due_at is None else min(due_at, tick)
