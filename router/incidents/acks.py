"""What an answer does to an incident: a pure function of its state (no store, no clock).

:func:`decide_ack` is the one decision behind :class:`router.acks.Acknowledger`: the
service reads the incident and its notification log, asks this function, and the store
applies the :class:`AckChange` under the incident's version (a conflict: read again).

- Mode ``first`` (on-call): the first answer acknowledges the incident for everyone —
  reminders and escalation stop, and the planner tells the others who took it.
- Mode ``each`` (read receipts): every asked recipient must answer; an answer marks
  that contact's rows answered (their reminders stop) and the incident becomes
  acknowledged with the last missing answer. Escalation stops at the first answer
  (someone is on it), reminders go on for the others.
- An operator (``by.contact_id`` None, or a contact that was never paged) acknowledges
  the incident as a whole, in both modes.
- A second answer is ``already`` (naming who); a resolved incident or a route that asks
  for no answer acknowledges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.acks.contract import AckBy, AckChannel, AckResult
from router.incidents.state import Incident, IncidentAck, RecipientLog, TimelineEvent

__all__ = ["AckChange", "AckDecision", "decide_ack"]


@dataclass(frozen=True, slots=True)
class AckChange:
    """What the store writes for one answer, in one transaction under the version."""

    answered: tuple[tuple[str, str], ...]  # (audience, contact_id) rows answered at ``at``
    ack: IncidentAck | None  # set when the incident becomes acknowledged now
    event: TimelineEvent  # ``acknowledged`` (or ``answered`` in mode each)
    at: datetime  # the incident's timer is moved to ``at`` at the latest (notices go now)


@dataclass(frozen=True, slots=True)
class AckDecision:
    """The answer to the caller, and what to write (None: nothing)."""

    result: AckResult
    change: AckChange | None = None


def _by(ack: IncidentAck) -> AckBy:
    return AckBy(name=ack.by_name, contact_id=ack.by_id)


_CHANNELS: Mapping[str, AckChannel] = {"sms": "sms", "link": "link", "api": "api", "cli": "cli"}


def _already(incident: Incident, ack: IncidentAck) -> AckDecision:
    return AckDecision(AckResult(
        "already", incident.id, acknowledged_by=_by(ack), acknowledged_at=ack.at,
        ack_channel=_CHANNELS.get(ack.channel)))


def decide_ack(incident: Incident, logs: Mapping[tuple[str, str], RecipientLog], *,
               by: AckBy, channel: AckChannel, at: datetime) -> AckDecision:
    """What ``by``'s answer (arrived by ``channel`` at ``at``) does to ``incident``."""
    policy = incident.decision.policy.ack
    if policy is None:
        return AckDecision(AckResult("not_asked", incident.id))
    if incident.ack is not None:
        return _already(incident, incident.ack)
    if incident.state != "open":
        return AckDecision(AckResult("resolved", incident.id))
    mine = sorted(key for key, log in logs.items()
                  if by.contact_id is not None and log.contact_id == by.contact_id)
    detail: dict[str, Any] = {"by": by.name, "contact_id": by.contact_id, "channel": channel}
    if policy.mode == "each" and mine:
        waiting = [key for key in mine if logs[key].answered_at is None]
        if not waiting:
            first = min(logs[key].answered_at or at for key in mine)
            return AckDecision(AckResult("already", incident.id, acknowledged_by=by,
                                         acknowledged_at=first, ack_channel=channel))
        others = [key for key, log in logs.items()
                  if log.waiting and key not in waiting]
        done = not others
        ack = IncidentAck(at, by.name, channel, by.contact_id) if done else None
        detail["mode"] = "each"
        detail["all_answered"] = done
        event = TimelineEvent(at, "acknowledged" if done else "answered", detail)
        return AckDecision(
            AckResult("acknowledged", incident.id, acknowledged_by=by, acknowledged_at=at,
                      ack_channel=channel),
            AckChange(tuple(waiting), ack, event, at))
    ack = IncidentAck(at, by.name, channel, by.contact_id)
    if incident.first_notice_at is not None:
        detail["after_s"] = round((at - incident.first_notice_at).total_seconds(), 3)
    return AckDecision(
        AckResult("acknowledged", incident.id, acknowledged_by=by, acknowledged_at=at,
                  ack_channel=channel),
        AckChange(tuple(mine), ack, TimelineEvent(at, "acknowledged", detail), at))
