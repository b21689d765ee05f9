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
  Each claim counts one attempt.
- ``mark_*`` only change rows that are still ``pending`` (a late mark after another
  worker finished the row is a no-op).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from router.models import Delivery, IntakeRecord, NewDelivery, Receipt

__all__ = ["COUNT_KEYS", "Store"]

#: Keys of :meth:`Store.counts`.
COUNT_KEYS: tuple[str, ...] = ("intake_pending", "pending", "sent", "failed")


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

    async def mark_failed(self, delivery_id: int, at: datetime, error: str) -> None:
        """Record a permanent failure (never retried)."""
        ...

    async def list_deliveries(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Delivery]:
        """The notification history, newest first, optionally filtered by status."""
        ...

    async def counts(self) -> dict[str, int]:
        """``{"intake_pending": n, "pending": n, "sent": n, "failed": n}``."""
        ...

    async def ping(self) -> bool:
        """True when the store answers a trivial query (readiness)."""
        ...
