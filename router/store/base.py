"""The whole store contract: one Protocol per role, with its value types. No SQL here.

:class:`Store` is every role in one object; an implementation (SQLite, in
:mod:`router.store.sqlite`; PostgreSQL, in :mod:`router.store.postgres`) is chosen by
``open_store(url)`` and must
keep the same behaviour: the same store tests run against each (``tests/store``'s
parametrized ``store`` fixture). Every timestamp crossing this interface is an aware UTC
``datetime``. The roles: :class:`Lifecycle` (open, close, health), :class:`IntakeLog`,
:class:`IncidentLog` (incidents and timers), :class:`Outbox`, :class:`Subscriptions`,
:class:`Retention`, :class:`Acks` (answers, waiting requests, SMS opt-outs),
:class:`Instances`, :class:`Privacy` (a contact's personal data erased, the history kept masked).

Semantics every implementation must keep:

- ``append_intake`` returns only once the records are durably committed; concurrent
  callers share transactions (group commit).
- Work several workers could share is taken by **claims** with a lease: intake rows
  (``claim_intake``), due incidents (``claim_due_incidents``), due deliveries
  (``claim_due``/``claim_lanes``). A claimed item is not handed to another owner until
  its lease ran out at the caller's ``now`` (a crashed worker's items come back after one
  lease); the owner may claim its own items again. Finishing the work releases it.
- An incident is updated only under its ``version``, checked by the update itself
  (``UPDATE ... WHERE id = ? AND version = ?``; no row = a conflict: nothing written,
  ``commit_flush`` returns None, an intake batch raises :class:`IncidentConflict`).
- Ids are never derived from counts nor assumed consecutive: intake and delivery ids are
  the database's, an incident's id hashes its group with the intake row that opened it.
- The store takes no domain decision: what an event does to an incident is worked out by
  :mod:`router.incidents`, inhibition by :func:`~router.rules.inhibit.is_inhibited_by_keys`
  (the store only reads the indexed sources, :class:`IncidentSnapshot`).
- ``commit_plan`` inserts deliveries and marks intake rows processed atomically; a
  delivery whose ``idempotency_key`` already exists is ignored (not an error).
- ``claim_due`` leases due pending deliveries: a claimed row is not returned again
  until ``lease_s`` has passed, so a crash mid-send resends it once after the lease.
  Each claim counts one attempt. ``claim_lanes`` does the same with a limit per channel
  (:class:`LaneSlots`); both take the most severe first (critical, warning, info), then
  the oldest due.
- ``mark_*`` only change rows that are still ``pending`` (a late mark after another
  worker finished the row is a no-op).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from router.errors import ConflictError, SubscriptionError
from router.incidents.acks import AckChange
from router.incidents.engine import AlertEvent
from router.incidents.flush import FlushResult, PlannedNotice
from router.incidents.state import (
    Incident,
    IncidentAck,
    IncidentAlert,
    RecipientLog,
    TimelineEvent,
)
from router.models import Delivery, IntakeRecord, NewDelivery, Receipt, RouteDecision
from router.rules.inhibit import InhibitSource, SourceKey, TargetKey, is_inhibited_by_keys

__all__ = [
    "BACKLOG_STAGES",
    "CLAIM_LEASE_S",
    "COUNT_KEYS",
    "INSTANCE_FORGET_S",
    "PRUNABLE",
    "AckRequest",
    "Acks",
    "Backlog",
    "DueStorm",
    "FlushClaim",
    "ForgetReport",
    "InboundLog",
    "IncidentConflict",
    "IncidentDetail",
    "IncidentLog",
    "IncidentSnapshot",
    "IncidentSummary",
    "InstanceInfo",
    "Instances",
    "IntakeLog",
    "LaneSlots",
    "Lifecycle",
    "OptOut",
    "Outbox",
    "Privacy",
    "Prunable",
    "PruneStep",
    "PushSubscription",
    "Retention",
    "SourceUpdate",
    "StageBacklog",
    "Store",
    "SubscriptionError",
    "Subscriptions",
    "claim_owner",
    "parse_subscription",
]

#: An incident changed between its read and a write computed from it (its ``version``
#: no longer matches): the write was not applied, the caller reads and recomputes.
IncidentConflict = ConflictError


#: How long a claim on intake rows or a due incident holds by default (seconds).
CLAIM_LEASE_S = 60.0


def claim_owner(role: str) -> str:
    """A name for one worker's claims, unique across processes and restarts."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


#: An instance not heard of for that long is deleted from the instances table (seconds).
INSTANCE_FORGET_S = 86400.0


#: Keys of :meth:`Store.counts`.
COUNT_KEYS: tuple[str, ...] = ("intake_pending", "pending", "due", "failed")
#: The stages of :meth:`Store.backlog`, in pipeline order.
BACKLOG_STAGES: tuple[str, ...] = ("intake", "incidents", "deliveries")


@dataclass(frozen=True, slots=True)
class StageBacklog:
    """What waits at one stage: how many items, and since when the oldest one is due."""

    items: int
    oldest: datetime | None  # when the oldest waiting item became due; None when empty

    def age_s(self, now: datetime) -> float:
        """Seconds the oldest item has waited at ``now`` (0 when nothing waits)."""
        if self.oldest is None:
            return 0.0
        return max(0.0, (now - self.oldest).total_seconds())


@dataclass(frozen=True, slots=True)
class Backlog:
    """The work due and not done, per stage (:meth:`Store.backlog`).

    - ``intake``: accepted alerts not yet routed (oldest: when it was received);
    - ``incidents``: incidents whose timer is due and not yet flushed, overdue by more
      than the grace (oldest: its due time) — e.g. a first notice not yet planned;
    - ``deliveries``: pending deliveries due now, not sent (oldest: its due time).
    """

    intake: StageBacklog
    incidents: StageBacklog
    deliveries: StageBacklog

    def stage(self, name: str) -> StageBacklog:
        """The backlog of the stage called ``name`` (one of :data:`BACKLOG_STAGES`)."""
        value: StageBacklog = getattr(self, name)
        return value


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class LaneSlots:
    """Free send slots reserved for one claim, per channel lane.

    ``per_channel`` names every lane (0: full, or its circuit breaker is open) and says
    how many of its deliveries the claim may take; ``other`` is how many deliveries of
    channels *without* a lane it may take (no adapter: they become dead letters).
    ``LaneSlots(other=n)`` claims any ``n`` due deliveries, whatever their channel.
    """

    per_channel: Mapping[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def total(self) -> int:
        """Deliveries the claim may take in all."""
        return sum(self.per_channel.values()) + self.other

    def filled(self, claimed: Sequence[Delivery]) -> bool:
        """Whether a lane's claim took all its slots (more of it may be due)."""
        taken = Counter(d.channel if d.channel in self.per_channel else None for d in claimed)
        if any(slots > 0 and taken[channel] >= slots
               for channel, slots in self.per_channel.items()):
            return True
        return self.other > 0 and taken[None] >= self.other


@dataclass(frozen=True, slots=True)
class FlushClaim:
    """Claim due deliveries in a flush's own transaction, as ``Store.claim_lanes`` would.

    ``slots``: the dispatcher's reserved free send slots, per channel lane; ``at``: the
    claim's clock (due means ``next_attempt_at <= at``; leased until ``at + lease_s``).
    """

    slots: LaneSlots
    lease_s: float
    at: datetime

    @property
    def limit(self) -> int:
        """Deliveries the claim may take in all."""
        return self.slots.total


@dataclass(frozen=True, slots=True)
class IncidentSnapshot:
    """What a flush reads: the incident, its alerts, notification log, inhibition, storms.

    Inhibition is read as data (each firing alert's target keys and the sources found
    under them); :attr:`inhibited` is decided from it by the pure
    :func:`~router.rules.inhibit.is_inhibited_by_keys`, never by the store.
    """

    incident: Incident
    alerts: list[IncidentAlert]
    logs: dict[tuple[str, str], RecipientLog]
    targets: dict[str, tuple[TargetKey, ...]]  # firing fingerprint -> its target keys
    sources: dict[tuple[str, str], tuple[InhibitSource, ...]]  # (rule_key, equal) -> found
    storm_recent: dict[str, int]

    @property
    def inhibited(self) -> dict[str, bool]:
        """Firing fingerprint -> whether a firing source inhibits it now."""
        return {fp: is_inhibited_by_keys(keys, fp, self.sources)
                for fp, keys in self.targets.items()}


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """A row of ``GET /api/v1/incidents``."""

    id: str
    route_id: str
    state: str
    severity: str
    audiences: list[str]
    group_labels: dict[str, str]
    opened_at: datetime
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    due_at: datetime | None
    alerts_firing: int
    alerts_total: int
    follow_ups: int
    flush_failures: int = 0  # failed flushes in a row (quarantined while > 0)
    flush_error: str | None = None  # why the last flush failed
    ack: IncidentAck | None = None  # who acknowledged it, when, how (None: not yet)
    escalation_tier: int = 0  # escalation tiers paged so far


@dataclass(frozen=True, slots=True)
class IncidentDetail:
    """``GET /api/v1/incidents/{id}``: the summary, its alerts, timeline and notifications."""

    summary: IncidentSummary
    alerts: list[IncidentAlert]
    events: list[TimelineEvent]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[RecipientLog] = field(default_factory=list)  # the notification log


@dataclass(frozen=True, slots=True)
class AckRequest:
    """One open incident waiting for one contact's answer (:meth:`Acks.pending_acks`)."""

    incident_id: str
    route_id: str
    owner: str | None  # the route's owner when the incident opened
    severity: str
    audience: str
    contact_id: str
    asked_at: datetime
    group_labels: dict[str, str]
    alertname: str  # of the incident's earliest alert ("" when none)


@dataclass(frozen=True, slots=True)
class OptOut:
    """An SMS opt-out received (``STOP``…): the carrier no longer delivers to ``phone``."""

    phone: str
    keyword: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What :meth:`Privacy.forget_contact` changed, table by table (row counts)."""

    contact_id: str
    deliveries_masked: int = 0  # recipient masked, subject/text/error erased, html dropped
    deliveries_cancelled: int = 0  # of those, still pending: cancelled (no address left)
    fallbacks_masked: int = 0  # planned fallbacks of those deliveries, masked the same way
    push_subscriptions_deleted: int = 0
    notification_logs_masked: int = 0  # incident_recipients rows: addresses masked
    timeline_events_masked: int = 0  # incident events naming the contact: name → initials
    acknowledgements_masked: int = 0  # incidents it acknowledged: name → initials
    opt_outs_deleted: int = 0  # SMS opt-outs of its phone numbers

    @property
    def total(self) -> int:
        """Rows changed in all (0: the store held nothing about this contact)."""
        return (self.deliveries_masked + self.fallbacks_masked
                + self.push_subscriptions_deleted + self.notification_logs_masked
                + self.timeline_events_masked + self.acknowledgements_masked
                + self.opt_outs_deleted)

    def counts(self) -> dict[str, int]:
        """The counts by name, in a fixed order (the CLI's output, JSON)."""
        return {"deliveries_masked": self.deliveries_masked,
                "deliveries_cancelled": self.deliveries_cancelled,
                "fallbacks_masked": self.fallbacks_masked,
                "push_subscriptions_deleted": self.push_subscriptions_deleted,
                "notification_logs_masked": self.notification_logs_masked,
                "timeline_events_masked": self.timeline_events_masked,
                "acknowledgements_masked": self.acknowledgements_masked,
                "opt_outs_deleted": self.opt_outs_deleted}


@dataclass(frozen=True, slots=True)
class DueStorm:
    """A storm summary due: the audience, the decision to render with, its incidents."""

    id: int
    audience: str
    decision_json: str
    opened_at: datetime
    incidents: list[IncidentSummary]


@dataclass(frozen=True, slots=True)
class SourceUpdate:
    """Inhibition sources of one received alert: its keys while firing, none once resolved."""

    fingerprint: str
    firing: bool
    keys: tuple[SourceKey, ...]


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """One browser subscription of one contact."""

    id: int
    contact_id: str
    endpoint: str
    p256dh: str  # base64url, the browser's P-256 public key (65 bytes decoded)
    auth: str  # base64url, the 16-byte auth secret
    created_at: datetime

    def info(self) -> dict[str, Any]:
        """The subscription in the browser's JSON shape (what pywebpush takes)."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def _b64url_len(value: str) -> int:
    padded = value + "=" * (-len(value) % 4)
    try:
        return len(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return -1


def parse_subscription(data: object) -> tuple[str, str, str]:
    """``(endpoint, p256dh, auth)`` from a ``PushSubscription.toJSON()`` object.

    Raises SubscriptionError naming the field when the shape or a key is wrong.
    """
    if not isinstance(data, Mapping):
        raise SubscriptionError("subscription must be an object with endpoint and keys")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionError("subscription.endpoint must be a URL string")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise SubscriptionError("subscription.endpoint must be an http(s) URL")
    keys = data.get("keys")
    if not isinstance(keys, Mapping):
        raise SubscriptionError("subscription.keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or _b64url_len(p256dh) != 65:
        raise SubscriptionError("subscription.keys.p256dh must be a base64url P-256 public "
                                "key (65 bytes)")
    if not isinstance(auth, str) or _b64url_len(auth) != 16:
        raise SubscriptionError("subscription.keys.auth must be a base64url 16-byte secret")
    return endpoint, p256dh, auth


Prunable = Literal["intake", "dead_intake", "deliveries", "incidents"]

#: Every kind of history :func:`prune_step` knows, in the order a pass prunes them.
PRUNABLE: Final[tuple[Prunable, ...]] = ("intake", "dead_intake", "deliveries", "incidents")


@dataclass(frozen=True, slots=True)
class PruneStep:
    """What one step deleted, where the next step resumes, and whether the walk is over."""

    deleted: int
    cursor: int
    done: bool


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """One Tocsin instance as it last recorded itself (:meth:`Instances.heartbeat`)."""

    instance_id: str
    version: str
    rules_hash: str
    started_at: datetime
    seen_at: datetime


# --------------------------------------------------------------------------- the contract, by role


class Lifecycle(Protocol):
    """Opening, closing and health of the store (readiness, backlog gauges)."""

    async def start(self) -> None:
        """Open the database, apply migrations, start background workers."""
        ...

    async def close(self) -> None:
        """Flush pending writes and close. Idempotent."""
        ...

    async def ping(self) -> bool:
        """True when the store answers a trivial query (readiness)."""
        ...

    async def counts(self, now: datetime | None = None) -> dict[str, int]:
        """The backlog, cheap enough to poll: unrouted intake rows, pending deliveries,
        those of them due at ``now`` (default: the wall clock; held and backed-off ones
        are pending but not due), and dead letters. Sent deliveries are not counted
        (their number grows with history; ``tocsin_deliveries_total`` counts sends)."""
        ...

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog:
        """Work due at ``now`` and not done, per stage, with the oldest item's due time.

        An incident counts once its timer is more than ``overdue_grace_s`` past due (a
        flush a few milliseconds behind is not a backlog). As cheap as :meth:`counts`:
        each part walks a partial index over the waiting rows only.
        """
        ...


class IntakeLog(Protocol):
    """The intake log: accepted alerts, claimed by the intake workers, applied to incidents."""

    async def append_intake(self, records: Sequence[IntakeRecord]) -> list[int]:
        """Persist accepted alerts; return their intake ids once durably committed."""
        ...

    async def append_intake_at(
        self,
        records: Sequence[IntakeRecord],
        positions: Mapping[tuple[str, str, int], int],
    ) -> list[int]:
        """:meth:`append_intake` and, in the same transaction, the stream positions it
        covers: ``(stream, topic, partition) -> next offset`` (the Kafka source)."""
        ...

    async def stream_positions(self, stream: str) -> dict[tuple[str, int], int]:
        """``(topic, partition) -> next offset`` recorded by :meth:`append_intake_at`."""
        ...

    async def fetch_intake(
        self, limit: int, *, after_id: int = 0
    ) -> list[tuple[int, IntakeRecord]]:
        """Unprocessed intake rows with an id above ``after_id``, oldest first."""
        ...

    async def claim_intake(
        self, limit: int, *, owner: str, now: datetime, lease_s: float, after_id: int = 0,
    ) -> list[tuple[int, IntakeRecord]]:
        """Lease up to ``limit`` unprocessed rows above ``after_id`` for ``lease_s``, oldest
        first: rows unclaimed, whose lease ran out at ``now``, or held by ``owner``.
        Committing (processed or dead-lettered) releases them. With several instances
        (PostgreSQL), a row is not claimed while an older row of the same alert
        (fingerprint) is not routed yet, whoever holds it: an alert's states are applied
        in the order they were accepted, even when its firing row is held by an
        instance that died (SQLite: one process claims in id order and frees every
        claim at start)."""
        ...

    async def commit_intake(
        self, intake_ids: Sequence[int], events: Sequence[AlertEvent],
        sources: Sequence[SourceUpdate], *, now: datetime,
        dead: Sequence[tuple[int, str]] = (),
    ) -> datetime | None:
        """Apply alerts to incidents and mark the intake rows processed, atomically.

        ``dead``: rows whose routing raised, ``(id, reason)``, dead-lettered instead.
        Returns the earliest timer set by this batch (None when no timer changed)."""
        ...

    async def dead_letter_intake(self, dead: Sequence[tuple[int, str]], *,
                                 now: datetime) -> None:
        """Set intake rows aside, ``(id, reason)``: dead-lettered, not processed."""
        ...

    async def list_intake(self, *, status: str = "dead", limit: int = 100,
                          offset: int = 0) -> list[dict[str, object]]:
        """Intake rows by status (``dead``: set aside because routing raised), newest first."""
        ...

    async def requeue_intake(self, ids: Sequence[int] | None) -> list[int]:
        """Replay dead-lettered intake rows (all when ``ids`` is None); return their ids."""
        ...

    async def upgrade_legacy_incidents(
            self, identity: Callable[[str, RouteDecision], str | None]) -> int:
        """Re-key the open incidents opened under a route position (:func:`upgrade_legacy_job`)."""
        ...


class IncidentLog(Protocol):
    """Incidents and their timers: claimed when due, flushed under their version."""

    async def claim_due_incidents(self, now: datetime, limit: int, *, owner: str,
                                  lease_s: float) -> list[str]:
        """Lease up to ``limit`` incidents due at ``now`` for ``lease_s``, earliest first.

        Another owner does not get them until the lease runs out; the owner itself does
        (a retry). A committed flush or a quarantine releases the claim."""
        ...

    async def due_incidents(self, now: datetime, limit: int) -> list[str]:
        """Ids of incidents whose timer is due at ``now``, earliest first."""
        ...

    async def next_incident_due(self) -> datetime | None:
        """The earliest incident timer, if any."""
        ...

    async def load_incident(
        self, incident_id: str, now: datetime,
        target_keys: Callable[[Mapping[str, str]], list[TargetKey]],
        storm_window_s: float | None,
    ) -> IncidentSnapshot | None:
        """Everything a flush of ``incident_id`` reads; each recipient's log carries its
        notices held by quiet hours (``held``) and its other first notices still pending
        (``queued``; ``cancellable`` when not leased at ``now``)."""
        ...

    async def commit_flush(
        self, snapshot: IncidentSnapshot, result: FlushResult, *, now: datetime,
        deadline_s: float, storm_window_s: float | None = None,
        claim: FlushClaim | None = None,
    ) -> list[Delivery] | None:
        """Apply a flush computed from ``snapshot``; None (nothing written) on conflict.

        ``result.cancel_queued`` are cancelled only if still pending and unleased: one
        claimed meanwhile is a conflict (the next flush plans the resolved notice).

        With ``claim``, the same transaction then leases due deliveries, at most
        ``claim.slots`` per channel lane (the flush's own and any other due one; the most
        severe, then the oldest due first) and returns them; otherwise it returns an
        empty list."""
        ...

    async def quarantine_incident(
        self, incident_id: str, *, now: datetime, reason: str, error: str,
        base_s: float, cap_s: float,
    ) -> tuple[int, datetime] | None:
        """A flush raised: back off the incident's timer (see :func:`quarantine_job`)."""
        ...

    async def due_storms(self, now: datetime) -> list[DueStorm]:
        """Storm summaries due at ``now``."""
        ...

    async def commit_storm(self, storm_id: int, notices: Sequence[PlannedNotice], *,
                           now: datetime, deadline_s: float) -> int:
        """Insert a storm summary's deliveries and mark it sent."""
        ...

    async def postpone_storm(self, storm_id: int, until: datetime) -> None:
        """A storm summary failed to plan: due again at ``until``."""
        ...

    async def list_incidents(
        self, *, state: str | None = None, route: str | None = None,
        audience: str | None = None, limit: int = 100, offset: int = 0,
    ) -> list[IncidentSummary]:
        """Incidents, newest first, filtered."""
        ...

    async def get_incident(self, incident_id: str) -> IncidentDetail | None:
        """One incident with its timeline."""
        ...


class Outbox(Protocol):
    """The outbox of deliveries: claimed with a lease by the dispatchers, marked once."""

    async def commit_plan(
        self,
        intake_ids: Sequence[int],
        deliveries: Sequence[NewDelivery],
        *,
        now: datetime,
        deadline_s: float,
    ) -> int:
        """In one transaction: insert deliveries (duplicates ignored), mark intake rows
        processed. Return the number of deliveries actually inserted."""
        ...

    async def claim_due(self, now: datetime, limit: int, lease_s: float) -> list[Delivery]:
        """Lease up to ``limit`` pending deliveries due at ``now`` for ``lease_s``."""
        ...

    async def claim_lanes(self, now: datetime, slots: LaneSlots,
                          lease_s: float) -> list[Delivery]:
        """Lease due deliveries, at most ``slots`` per channel lane; one transaction."""
        ...

    async def due_by_channel(self, now: datetime) -> dict[str, int]:
        """Pending deliveries due at ``now`` and not leased, per channel."""
        ...

    async def mark_sent(self, delivery_id: int, at: datetime, receipt: Receipt) -> None:
        """Record a successful send."""
        ...

    async def mark_retry(
        self,
        delivery_id: int,
        next_attempt_at: datetime,
        error: str,
        *,
        at: datetime | None = None,
    ) -> None:
        """Record a failed attempt that will be retried at ``next_attempt_at``."""
        ...

    async def mark_failed(self, delivery_id: int, at: datetime, error: str, *,
                          reason: str = "permanent") -> list[int]:
        """Record a permanent failure (a dead letter: never retried unless replayed), with
        ``reason`` permanent|deadline|unconfigured. In the same transaction, insert the
        delivery's planned fallbacks (``route.fallback``); return their ids."""
        ...

    async def defer(self, delivery_id: int, next_attempt_at: datetime) -> None:
        """Hand a claimed delivery back unsent (rate limit); the attempt is not counted."""
        ...

    async def requeue_failed(self, ids: Sequence[int] | None, *, now: datetime,
                             deadline_s: float) -> list[int]:
        """Replay dead letters (``ids``, or all when None) with a fresh deadline."""
        ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by id, or None."""
        ...

    async def list_deliveries(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0,
        incident: str | None = None, phase: str | None = None,
    ) -> list[Delivery]:
        """The notification history, newest first, optionally filtered by status, by
        incident (``incident_key``) and by phase."""
        ...


class Subscriptions(Protocol):
    """Web Push subscriptions of contacts."""

    async def add_push_subscription(self, contact_id: str, endpoint: str, p256dh: str,
                                    auth: str, *, now: datetime) -> PushSubscription:
        """Store a contact's Web Push subscription; the same contact and endpoint again
        replaces its keys (on every contact of the endpoint); one endpoint may belong to
        several contacts (a shared browser), each keeping its own."""
        ...

    async def push_subscriptions(self, contact_id: str | None = None) -> list[PushSubscription]:
        """Web Push subscriptions of one contact (or all), oldest first."""
        ...

    async def delete_push_subscription(self, subscription_id: int) -> bool:
        """Remove a Web Push subscription by id; True when it existed."""
        ...

    async def delete_push_endpoint(self, endpoint: str) -> bool:
        """Remove every Web Push subscription of ``endpoint``; True when one existed."""
        ...


class InboundLog(Protocol):
    """Inbound messages already handled (SNS MessageId, SMS inboundMessageId): a message
    delivered twice acts once."""

    async def remember_inbound(self, kind: str, message_id: str, at: datetime, *,
                               forget_before: datetime | None = None) -> bool:
        """Record ``(kind, message_id)`` seen at ``at``; True when it is new, False for a
        duplicate. ``forget_before``: also forget a bounded batch of ids seen before it."""
        ...

    async def forget_inbound(self, kind: str, message_id: str) -> None:
        """Forget ``(kind, message_id)``: its handling failed, so a retry must act."""
        ...


class Retention(Protocol):
    """Bounded deletes of history no longer needed."""

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Retention: delete one bounded step of ``kind`` older than ``cutoff``."""
        ...


class Acks(Protocol):
    """Acknowledgements: answers applied under the incident's version, the requests
    waiting for a contact's answer, SMS opt-outs. The decision is
    :func:`router.incidents.acks.decide_ack`'s; the store only writes it."""

    async def acknowledge_incident(self, incident_id: str, version: int, change: AckChange,
                                   *, now: datetime) -> bool:
        """Apply ``change`` if the incident is still at ``version`` (checked by the
        update itself): its recipients' answers, its acknowledgement, the timeline event,
        and its timer moved to ``change.at`` at the latest (the scheduler plans the
        ``acknowledged`` notices and drops the reminders). False (nothing written) on a
        conflict."""
        ...

    async def pending_acks(self, contact_ids: Sequence[str]) -> list[AckRequest]:
        """Open, unacknowledged incidents that asked one of ``contact_ids`` for an answer
        they have not given, oldest request first (one row per incident and contact)."""
        ...

    async def record_opt_out(self, phone: str, keyword: str, *, at: datetime) -> None:
        """Record an SMS opt-out of ``phone``."""
        ...

    async def opt_outs(self, phone: str | None = None, *, limit: int = 100) -> list[OptOut]:
        """SMS opt-outs (of ``phone``, or all), newest first."""
        ...


class Instances(Protocol):
    """The instances sharing the store: each records itself, and reads the others."""

    async def heartbeat(self, instance_id: str, *, version: str, rules_hash: str,
                        started_at: datetime, now: datetime) -> None:
        """Record that ``instance_id`` is alive at ``now`` with this rule set (upsert)."""
        ...

    async def instances(self, now: datetime, within_s: float) -> list[InstanceInfo]:
        """Instances heard of in the last ``within_s`` seconds before ``now``, by id."""
        ...


class Privacy(Protocol):
    """A person's right to be forgotten, as far as the state store goes (the contact
    files are the operator's to edit)."""

    async def forget_contact(self, contact_id: str, *, at: datetime,
                             phones: Sequence[str] = ()) -> ForgetReport:
        """Erase the personal data of ``contact_id`` in one transaction, keeping the
        history's rows (:mod:`router.store.erasure` says what replaces what): its
        deliveries and their planned fallbacks keep channel, phase, status and times but
        lose address (masked), subject, text, HTML and error text; those still pending are
        cancelled; its Web Push subscriptions are deleted; its notification-log rows keep
        the contact id but their addresses are masked; its name in acknowledgements and
        timeline events becomes initials; SMS opt-outs of its phone numbers (``phones``
        and those its SMS deliveries went to) are deleted. Forgetting twice changes
        nothing more than masked rows again."""
        ...


class Store(Lifecycle, IntakeLog, IncidentLog, Outbox, Subscriptions, InboundLog, Retention,
            Acks, Instances, Privacy,
            Protocol):
    """Durable state of Tocsin: every role in one object (what ``open_store`` returns)."""
