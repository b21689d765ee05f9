"""The scheduler: the one loop that drives every incident timer.

Timers are rows (``incidents.due_at``), so a restart neither loses nor re-fires them:
the scheduler asks the store which incidents are due at ``clock.now()``, computes each
flush with the pure :func:`router.incidents.flush.plan_flush` (in a render thread when
it renders many messages: router/flush_offload.py), and commits it (new
deliveries, notification log, next timer) in one transaction. A flush computed from a
snapshot that changed meanwhile (an alert arrived, a held delivery was claimed) is not
applied; the incident is read and computed again.

When a dispatcher is attached, a flush that plans deliveries also claims due ones in its
own transaction, up to the send slots the dispatcher reserved for it, and hands them over
in memory (:meth:`~router.dispatch.dispatcher.Dispatcher.offer`): the alert's path skips
a separate claim transaction (one fsync) and the dispatcher's wake-up. The dispatcher is
told to claim by itself only when the flush could not claim everything it planned (no
free slot, or the claim filled every reserved slot). A crash after the commit leaves the
rows leased, claimed again when the lease runs out, as after a crash mid-send.

The clock is injected: tests drive :meth:`Scheduler.flush_due` with a
:class:`~router.clock.FakeClock`; the running loop sleeps until the next timer, at most
``poll_interval_s``, or until :meth:`notify` (an intake batch set a timer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

import structlog

from router.clock import Clock
from router.flush_offload import plan_flush_off_loop
from router.incidents.flush import FlushRules, plan_storm
from router.incidents.state import decision_from_json
from router.incidents.view import StormItem
from router.metrics import INCIDENT_FLUSHES
from router.models import Delivery
from router.rules.inhibit import TargetKey, target_keys
from router.store.incidents import FlushClaim, IncidentStore

__all__ = ["Scheduler", "SlotClaimer"]

_log = structlog.get_logger(__name__)

_ATTEMPTS = 5  # recomputations of one flush after conflicts before leaving it for later


class SlotClaimer(Protocol):
    """The dispatcher's side of a claim made in a flush's transaction."""

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is leased."""
        ...

    def reserve(self) -> int:
        """Reserve the free send slots; the claim takes at most that many deliveries."""
        ...

    def offer(self, deliveries: Sequence[Delivery], reserved: int) -> None:
        """Send the claimed deliveries and release the reservation."""
        ...


class Scheduler:
    """Flushes due incidents into the outbox; one instance per service."""

    def __init__(
        self,
        store: IncidentStore,
        rules: Callable[[], FlushRules],
        *,
        clock: Clock,
        deadline_s: float,
        poll_interval_s: float = 1.0,
        batch_size: int = 200,
        on_planned: Callable[[], None] | None = None,
        dispatcher: SlotClaimer | None = None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._rules = rules
        self._clock = clock
        self._deadline_s = deadline_s
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self.on_planned = on_planned
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()

    def notify(self, due_at: datetime | None = None) -> None:
        """A timer was set or moved: look again now."""
        self._wake.set()

    async def run(self) -> None:
        """Flush due incidents until :meth:`stop`."""
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                try:
                    flushed = await self.flush_due()
                except Exception:  # noqa: BLE001 - logged with traceback; the loop lives on
                    _log.exception("scheduler.flush_failed")
                    flushed = 0
                if flushed >= self._batch_size or self._stopping:
                    continue
                await self._sleep()
        finally:
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Finish the current flush and return."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def flush_due(self) -> int:
        """Flush every incident due now (up to ``batch_size``); return how many."""
        now = self._clock.now()
        due = await self._store.due_incidents(now, self._batch_size)
        unclaimed = False  # planned deliveries the dispatcher must claim by itself
        for incident_id in due:
            if self._stopping:
                break
            planned, claimed_all = await self._flush(incident_id, now)
            unclaimed = unclaimed or (planned > 0 and not claimed_all)
        if await self._flush_storms(now):
            unclaimed = True
        if unclaimed and self.on_planned is not None:
            self.on_planned()
        return len(due)

    async def flush_one(self, incident_id: str, now: datetime) -> int:
        """Flush one incident; return the number of deliveries planned."""
        planned, _ = await self._flush(incident_id, now)
        return planned

    async def _flush(self, incident_id: str, now: datetime) -> tuple[int, bool]:
        """Flush one incident: (deliveries planned, every due one handed to the dispatcher)."""
        rules = self._rules()
        inhibit = rules.incident.inhibit_rules

        def keys(labels: Mapping[str, str]) -> list[TargetKey]:
            return target_keys(inhibit, labels) if inhibit else []

        storm = rules.incident.storm_control
        for _ in range(_ATTEMPTS):
            snapshot = await self._store.load_incident(
                incident_id, now, keys, storm.window if storm is not None else None)
            if snapshot is None:
                return 0, True
            due = snapshot.incident.due_at
            if due is None or due > now:
                return 0, True  # flushed meanwhile
            result = await plan_flush_off_loop(snapshot.incident, snapshot.alerts,
                                               snapshot.logs, snapshot.inhibited, rules, now,
                                               storm_recent=snapshot.storm_recent)
            claim = self._reserve_claim(now) if result.notices else None
            claimed: list[Delivery] | None = None
            try:
                claimed = await self._store.commit_flush(
                    snapshot, result, now=now, deadline_s=self._deadline_s,
                    storm_window_s=storm.window if storm is not None else None, claim=claim)
            finally:
                if claim is not None and self._dispatcher is not None:
                    self._dispatcher.offer(claimed or [], claim.limit)  # even after a failure
            if claimed is not None:
                INCIDENT_FLUSHES.labels(result="applied").inc()
                _log.info("incident.flushed", incident=incident_id, state=result.state,
                          deliveries=len(result.notices), cancelled=len(result.cancel),
                          claimed=len(claimed),
                          next_due_at=result.due_at.isoformat() if result.due_at else None)
                # A claim that stopped short of its slots took every delivery then due.
                return len(result.notices), claim is not None and len(claimed) < claim.limit
            INCIDENT_FLUSHES.labels(result="conflict").inc()
            await asyncio.sleep(0)
        _log.warning("scheduler.flush_conflicts", incident=incident_id)
        return 0, True

    def _reserve_claim(self, now: datetime) -> FlushClaim | None:
        """The dispatcher's free send slots, as a claim for the flush's transaction."""
        if self._dispatcher is None:
            return None
        slots = self._dispatcher.reserve()
        if slots <= 0:
            return None
        # The lease starts at the commit, not at the flush's (older) ``now``; never before
        # ``now``, so the flush's own rows (due at ``now``) are due for the claim.
        return FlushClaim(limit=slots, lease_s=self._dispatcher.lease_s,
                          at=max(now, self._clock.now()))

    async def _flush_storms(self, now: datetime) -> int:
        rules = self._rules()
        if rules.incident.storm_control is None:
            return 0
        planned = 0
        for storm in await self._store.due_storms(now):
            items = tuple(StormItem(
                id=s.id, title=s.group_labels.get("alertname") or s.id,
                count=s.alerts_firing, started_at=s.started_at, state=s.state)
                for s in storm.incidents)
            notices = plan_storm(storm.id, storm.audience, decision_from_json(storm.decision_json),
                                 items, rules, now)
            planned += await self._store.commit_storm(storm.id, notices, now=now,
                                                      deadline_s=self._deadline_s)
            _log.info("incident.storm_summary", audience=storm.audience,
                      incidents=len(items), deliveries=len(notices))
        return planned

    async def _sleep(self) -> None:
        timeout = self._poll_interval_s
        try:
            next_due = await self._store.next_incident_due()
        except Exception:  # noqa: BLE001 - a read failure: poll again later
            _log.exception("scheduler.next_due_failed")
            next_due = None
        if next_due is not None:
            timeout = min(timeout, max(0.0, (next_due - self._clock.now()).total_seconds()))
        if timeout > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass
        self._wake.clear()
