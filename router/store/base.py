"""The state store interface: intake log and delivery outbox.

One Protocol, several implementations with the same behaviour (SQLite now, PostgreSQL
later). Every timestamp crossing this interface is an aware UTC ``datetime``.

Semantics every implementation must keep:

- ``append_intake`` returns only once the records are durably committed; concurrent
  callers share transactions (group commit).
- ``commit_plan`` inserts deliveries and marks intake rows processed atomically; a
  delivery whose ``idempotency_key`` already exists is ignored (not an error).
- ``claim_due`` leases due pending deliveries: a claimed row is not returned again
  until ``lease_s`` has passed, so a crash mid-send resends it once after the lease.
  Each claim counts one attempt. ``claim_lanes`` does the same with a limit per channel
  (:class:`~router.store.lanes.LaneSlots`); both take the most severe first (critical,
  warning, info), then the oldest due.
- ``mark_*`` only change rows that are still ``pending`` (a late mark after another
  worker finished the row is a no-op).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from router.errors import TocsinError
from router.models import Delivery, IntakeRecord, NewDelivery, Receipt
from router.store.lanes import LaneSlots
from router.store.retention import Prunable, PruneStep
from router.store.subscriptions import PushSubscription

__all__ = [
    "BACKLOG_STAGES",
    "CLAIM_LEASE_S",
    "COUNT_KEYS",
    "Backlog",
    "IncidentConflict",
    "StageBacklog",
    "Store",
    "claim_owner",
]

class IncidentConflict(TocsinError):
    """An incident changed between its read and a write computed from it (its ``version``
    no longer matches): the write was not applied, the caller reads and recomputes."""


#: How long a claim on intake rows or a due incident holds by default (seconds).
CLAIM_LEASE_S = 60.0


def claim_owner(role: str) -> str:
    """A name for one worker's claims, unique across processes and restarts."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


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


class Store(Protocol):
    """Durable state of Tocsin: the intake log and the outbox of deliveries."""

    async def start(self) -> None:
        """Open the database, apply migrations, start background workers."""
        ...

    async def close(self) -> None:
        """Flush pending writes and close. Idempotent."""
        ...

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

    async def fetch_intake(self, limit: int) -> list[tuple[int, IntakeRecord]]:
        """Return up to ``limit`` unprocessed intake rows, oldest first."""
        ...

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

    async def add_push_subscription(self, contact_id: str, endpoint: str, p256dh: str,
                                    auth: str, *, now: datetime) -> PushSubscription:
        """Store (or replace, by endpoint) a contact's Web Push subscription."""
        ...

    async def push_subscriptions(self, contact_id: str | None = None) -> list[PushSubscription]:
        """Web Push subscriptions of one contact (or all), oldest first."""
        ...

    async def delete_push_subscription(self, subscription_id: int) -> bool:
        """Remove a Web Push subscription by id; True when it existed."""
        ...

    async def delete_push_endpoint(self, endpoint: str) -> bool:
        """Remove the Web Push subscription of ``endpoint``; True when it existed."""
        ...

    async def list_deliveries(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Delivery]:
        """The notification history, newest first, optionally filtered by status."""
        ...

    async def list_intake(self, *, status: str = "dead", limit: int = 100,
                          offset: int = 0) -> list[dict[str, object]]:
        """Intake rows by status (``dead``: set aside because routing raised), newest first."""
        ...

    async def requeue_intake(self, ids: Sequence[int] | None) -> list[int]:
        """Replay dead-lettered intake rows (all when ``ids`` is None); return their ids."""
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

    async def ping(self) -> bool:
        """True when the store answers a trivial query (readiness)."""
        ...

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Retention: delete one bounded step of ``kind`` older than ``cutoff``."""
        ...
