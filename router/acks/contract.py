"""The seam between the ways an answer arrives and the service that records it.

An SMS reply (``POST /webhook/sns``), an acknowledgement link (``POST /ack/{token}``),
``POST /api/v1/incidents/{id}/ack`` and ``tocsin incidents ack`` all end in
:meth:`Acknowledger.acknowledge`; the SMS path first asks
:meth:`Acknowledger.pending_for` which incidents are waiting for an answer from that
phone. The implementation (store + rules) is the service's; callers depend on this
Protocol only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = ["AckBy", "AckChannel", "AckResult", "AckStatus", "Acknowledger", "PendingAck"]

#: How an acknowledgement arrived.
AckChannel = Literal["sms", "link", "api", "cli"]
#: ``acknowledged``: this call acknowledged it; ``already``: someone did before (the
#: result names who); ``resolved``: the incident is over, nothing to acknowledge;
#: ``not_found``: no such incident; ``not_asked``: the incident asks for no answer.
AckStatus = Literal["acknowledged", "already", "resolved", "not_found", "not_asked"]


@dataclass(frozen=True, slots=True)
class AckBy:
    """Who answered: a paged contact (``contact_id`` set) or an operator by name."""

    name: str
    contact_id: str | None = None


@dataclass(frozen=True, slots=True)
class PendingAck:
    """One incident waiting for an answer from one paged address."""

    incident_id: str
    code: str  # :func:`router.acks.codes.ack_code` of the incident
    contact_id: str
    contact_name: str
    title: str  # one line naming the incident (the choices SMS lists them)
    asked_at: datetime  # first notice that asked this contact


@dataclass(frozen=True, slots=True)
class AckResult:
    """What :meth:`Acknowledger.acknowledge` did."""

    status: AckStatus
    incident_id: str
    acknowledged_by: AckBy | None = None  # who acknowledged it (this call or an earlier one)
    acknowledged_at: datetime | None = None
    ack_channel: AckChannel | None = None


class Acknowledger(Protocol):
    """Records answers; durable before it returns (the caller then answers 200)."""

    async def pending_for(self, channel: str, address: str, now: datetime) -> list[PendingAck]:
        """Open incidents that asked ``address`` (E.164 for ``sms``) for an answer and
        have none yet (mode ``first``) or none from this contact (mode ``each``)."""
        ...

    async def acknowledge(self, incident_id: str, *, by: AckBy, channel: AckChannel,
                          at: datetime) -> AckResult:
        """Acknowledge ``incident_id``: stops re-sends and escalation (mode ``first``, or
        the last missing answer in mode ``each``) and plans the ``acknowledged`` notice
        to the others when the route asks for it. Idempotent: a second answer is
        ``already``."""
        ...

    async def record_opt_out(self, phone: str, keyword: str, at: datetime) -> list[str]:
        """Record that ``phone`` opted out of SMS (``STOP``…); returns the ids of the paged
        contacts with that phone (their routes' owners are told)."""
        ...

    async def send_reply(self, phone: str, text: str, at: datetime) -> None:
        """Queue one SMS answer to ``phone`` (the choices of an ambiguous reply)."""
        ...
