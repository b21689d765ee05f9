"""The acknowledgement service: :class:`router.acks.Acknowledger` on the store.

Every way an answer arrives (an SMS reply, a link, the API, the CLI) ends here. An
answer is decided by the pure :func:`router.incidents.acks.decide_ack` on the incident as
stored, and written by :meth:`Store.acknowledge_incident` under the incident's version
(a conflict — the scheduler flushed meanwhile — reads again); the incident's timer moves
to the answer and the scheduler is woken, so the ``acknowledged`` notices go at once and
the pending reminders and escalation are dropped by the planner. Durable before it
returns: the caller then answers 200.

Who is paged is read from the rules in use: an address (a phone for ``sms``, an e-mail)
is a contact's when one of the audiences lists it. A reply from an address no contact
has acknowledges nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final, Protocol

import structlog

from router.acks.codes import ack_code
from router.acks.contract import AckBy, AckChannel, AckResult, PendingAck
from router.errors import ConflictError
from router.incidents.acks import decide_ack
from router.incidents.flush import AudienceView
from router.masking import mask_address
from router.metrics import ACK_LATENCY, ACK_SMS_OPT_OUTS, ACKNOWLEDGEMENTS
from router.models import Contact, NewDelivery, RenderedMessage
from router.rules.inhibit import TargetKey
from router.store.base import AckRequest, Store

__all__ = ["AckRules", "AckService"]

_log = structlog.get_logger(__name__)

_ATTEMPTS: Final = 5  # re-reads of an incident after version conflicts
#: The ``incident_key`` of SMS replies (they belong to no incident).
REPLY_KEY: Final = "sms-reply"


class AckRules(Protocol):
    """What the service needs of the rule set (``router.rules.RuleSet`` satisfies it)."""

    @property
    def audiences(self) -> Mapping[str, AudienceView]: ...


def _no_targets(_labels: Mapping[str, str]) -> list[TargetKey]:
    return []


class AckService:
    """Records answers and opt-outs, queues SMS replies (one instance per service)."""

    def __init__(self, store: Store, rules: Callable[[], AckRules], *,
                 wake: Callable[[], None] | None = None,
                 on_planned: Callable[[], None] | None = None,
                 reply_deadline_s: float = 3600.0) -> None:
        """``wake``: the scheduler's notify (an acknowledged incident is flushed now);
        ``on_planned``: the dispatcher's (an SMS reply is sent now);
        ``reply_deadline_s``: how long an SMS reply may be retried."""
        self._store = store
        self._rules = rules
        self.wake = wake
        self.on_planned = on_planned
        self._reply_deadline_s = reply_deadline_s

    # -- who is who -------------------------------------------------------------------

    def _contacts(self) -> dict[str, Contact]:
        """Every contact of the rules in use, by id (the first definition wins)."""
        out: dict[str, Contact] = {}
        for _name, audience in sorted(self._rules().audiences.items()):
            for contact in audience.contacts:
                out.setdefault(contact.id, contact)
        return out

    @staticmethod
    def _matches(contact: Contact, channel: str, address: str) -> bool:
        if channel == "sms":
            return contact.phone == address
        if channel == "email":
            return (contact.email or "").lower() == address.lower()
        return contact.id == address

    # -- the Acknowledger contract ----------------------------------------------------

    async def pending_for(self, channel: str, address: str, now: datetime) -> list[PendingAck]:
        """Open incidents waiting for the answer of the contact(s) at ``address``."""
        contacts = {cid: c for cid, c in self._contacts().items()
                    if self._matches(c, channel, address)}
        if not contacts:
            return []
        out: list[PendingAck] = []
        for request in await self._store.pending_acks(sorted(contacts)):
            contact = contacts[request.contact_id]
            out.append(PendingAck(
                incident_id=request.incident_id, code=ack_code(request.incident_id),
                contact_id=request.contact_id, contact_name=contact.name,
                title=_title(request), asked_at=request.asked_at))
        return out

    async def acknowledge(self, incident_id: str, *, by: AckBy, channel: AckChannel,
                          at: datetime) -> AckResult:
        """Acknowledge ``incident_id`` (see :func:`router.incidents.acks.decide_ack`).

        A paged contact given by id alone (``by.name`` empty, e.g. from a link) is
        named from the rules."""
        if by.contact_id is not None and not by.name:
            contact = self._contacts().get(by.contact_id)
            by = AckBy(name=contact.name if contact is not None else by.contact_id,
                       contact_id=by.contact_id)
        for _ in range(_ATTEMPTS):
            snapshot = await self._store.load_incident(incident_id, at, _no_targets, None)
            if snapshot is None:
                return AckResult("not_found", incident_id)
            incident = snapshot.incident
            decision = decide_ack(incident, snapshot.logs, by=by, channel=channel, at=at)
            if decision.change is None:
                return decision.result
            if not await self._store.acknowledge_incident(incident_id, incident.version,
                                                          decision.change, now=at):
                await asyncio.sleep(0)
                continue  # the incident changed meanwhile: decide again on what it is now
            if decision.change.ack is not None:
                ACKNOWLEDGEMENTS.labels(channel=channel).inc()
                if incident.first_notice_at is not None:
                    ACK_LATENCY.labels(route=incident.route_id).observe(
                        max(0.0, (at - incident.first_notice_at).total_seconds()))
            _log.info("incident.acknowledged", incident=incident_id, channel=channel,
                      contact_id=by.contact_id, by=by.name if by.contact_id is None else None,
                      incident_acknowledged=decision.change.ack is not None)
            if self.wake is not None:
                self.wake()
            return decision.result
        raise ConflictError(f"incident {incident_id} kept changing while acknowledging it")

    async def record_opt_out(self, phone: str, keyword: str, at: datetime) -> list[str]:
        """Record the opt-out; warn, for the owners of the routes paging them, that these
        contacts no longer receive SMS. Returns their contact ids."""
        await self._store.record_opt_out(phone, keyword, at=at)
        contacts = self._contacts()
        ids = sorted(cid for cid, c in contacts.items() if c.phone == phone)
        ACK_SMS_OPT_OUTS.labels(known="true" if ids else "false").inc()
        if not ids:
            _log.info("acks.sms_opt_out", phone=mask_address(phone), keyword=keyword,
                      contacts=[])
            return []
        audiences = sorted(name for name, audience in self._rules().audiences.items()
                           if any(c.id in ids for c in audience.contacts))
        waiting = await self._store.pending_acks(ids)
        owners = sorted({r.owner for r in waiting if r.owner})
        routes = sorted({r.route_id for r in waiting})
        _log.warning("acks.sms_opt_out", phone=mask_address(phone), keyword=keyword,
                     contacts=ids, audiences=audiences, owners=owners, routes=routes,
                     note="these on-call contacts no longer receive SMS until they opt in")
        return ids

    async def send_reply(self, phone: str, text: str, at: datetime) -> None:
        """Queue one ``reply`` SMS to ``phone`` through the outbox."""
        contact_ids = sorted(cid for cid, c in self._contacts().items() if c.phone == phone)
        locale = self._contacts()[contact_ids[0]].locale if contact_ids else "en"
        key = hashlib.sha256("\x1f".join(("reply", phone, text, at.isoformat()))
                             .encode()).hexdigest()
        delivery = NewDelivery(
            idempotency_key=key, incident_key=REPLY_KEY, fingerprint="", route_id="",
            phase="reply", channel="sms", recipient=phone,
            contact_id=contact_ids[0] if contact_ids else "", audience="",
            severity="warning", locale=locale,
            message=RenderedMessage(subject="", text=text))
        await self._store.commit_plan([], [delivery], now=at,
                                      deadline_s=self._reply_deadline_s)
        if self.on_planned is not None:
            self.on_planned()


def _title(request: AckRequest) -> str:
    """One line naming an incident in the choices SMS: its alert name and group."""
    name = request.group_labels.get("alertname") or request.alertname or request.incident_id
    extra = ", ".join(f"{k}={v}" for k, v in sorted(request.group_labels.items())
                      if k != "alertname")
    return f"{name} ({extra})" if extra else name

