"""The scheduler: the one loop that drives every incident timer.

Timers are rows (``incidents.due_at``), so a restart neither loses nor re-fires them:
the scheduler asks the store which incidents are due at ``clock.now()``, computes each
flush with the pure :func:`router.incidents.flush.plan_flush` (in a render thread when
it renders many messages: router/flush_offload.py), and commits it (new
deliveries, notification log, next timer) in one transaction. A flush computed from a
snapshot that changed meanwhile (an alert arrived, a held delivery was claimed) is not
applied; the incident is read and computed again.

When a dispatcher is attached, a flush that plans deliveries also claims due ones in its
own transaction, up to the send slots the dispatcher reserved for it in each channel's
lane, and hands them over in memory
(:meth:`~router.workers.dispatcher.Dispatcher.offer`): the alert's path skips a separate
claim transaction (one fsync) and the dispatcher's wake-up. The dispatcher is told to
claim by itself only when the flush could not claim everything it planned (no free slot,
or a lane's claim filled every slot reserved for it; a lane found full claims again as
soon as one of its sends ends). A crash after the commit leaves the rows leased, claimed
again when the lease runs out, as after a crash mid-send.

One incident's failure is its own: a flush that raises (a bug, a value out of range)
quarantines that incident — the reason on its timeline (``flush_failed``), its timer
pushed out with exponential back-off (``quarantine_base_s`` doubling up to
``quarantine_cap_s``), one log line, ``tocsin_pipeline_item_failures_total{stage="flush"}``
— and the pass goes on with the next due incident. The next successful flush ends the
quarantine. A storm summary that fails to plan is postponed the same way.

The clock is injected: tests drive :meth:`Scheduler.flush_due` with a
:class:`~router.clock.FakeClock`; the running loop sleeps until the next timer, at most
``poll_interval_s``, or until :meth:`notify` (an intake batch set a timer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from router.acks.links import AckLinks
from router.clock import Clock
from router.flush_offload import (
    LARGE_FLUSH_RENDERS,
    collector_paused,
    estimated_renders,
    plan_flush_off_loop,
    release_off_loop,
)
from router.incidents.flush import FlushRules, failure_reason, plan_storm
from router.incidents.state import decision_from_json
from router.metrics import (
    ACK_ESCALATIONS,
    ACK_REMINDERS,
    CLAIMS,
    INCIDENT_FLUSHES,
    PIPELINE_ITEM_FAILURES,
)
from router.models import Delivery
from router.rules.inhibit import TargetKey, target_keys
from router.rules.view import StormItem
from router.store.base import CLAIM_LEASE_S, FlushClaim, LaneSlots, Store, claim_owner
from router.workers.loop import Loop

__all__ = ["Scheduler", "SlotClaimer"]

_log = structlog.get_logger(__name__)

_ATTEMPTS = 5  # recomputations of one flush after conflicts before leaving it for later


class SlotClaimer(Protocol):
    """The dispatcher's side of a claim made in a flush's transaction."""

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is leased."""
        ...

    def reserve(self) -> LaneSlots:
        """Reserve the free send slots of every lane; the claim takes at most that many
        deliveries per lane."""
        ...

    def offer(self, deliveries: Sequence[Delivery], reserved: LaneSlots) -> None:
        """Send the claimed deliveries and release the reservation."""
        ...


class Scheduler(Loop):
    """Flushes due incidents into the outbox; one instance per service."""

    def __init__(
        self,
        store: Store,
        rules: Callable[[], FlushRules],
        *,
        clock: Clock,
        deadline_s: float,
        poll_interval_s: float = 1.0,
        batch_size: int = 200,
        on_planned: Callable[[], None] | None = None,
        dispatcher: SlotClaimer | None = None,
        quarantine_base_s: float = 60.0,
        quarantine_cap_s: float = 3600.0,
        lease_s: float = CLAIM_LEASE_S,
        ack_links: AckLinks | None = None,
    ) -> None:
        """``quarantine_base_s`` / ``quarantine_cap_s``: the back-off of an incident whose
        flush raised (the first retry after ``base``, doubling, at most ``cap``);
        ``lease_s``: how long the claim on a due incident holds (another scheduler does
        not flush it meanwhile); ``ack_links``: the acknowledgement links notices asking
        for an answer show (None: not configured)."""
        self._store = store
        self._ack_links = ack_links
        self._lease_s = lease_s
        self._owner = claim_owner("scheduler")
        self._quarantine_base_s = quarantine_base_s
        self._quarantine_cap_s = quarantine_cap_s
        self._storm_failures: dict[int, int] = {}
        self._stalled = False  # the last pass set nothing aside and flushed nothing
        self._dispatcher = dispatcher
        self._rules = rules
        self._clock = clock
        self._deadline_s = deadline_s
        self._batch_size = batch_size
        self.on_planned = on_planned
        super().__init__(poll_interval_s=poll_interval_s)

    name = "scheduler"
    failure_event = "scheduler.flush_failed"

    def notify(self, due_at: datetime | None = None) -> None:
        """A timer was set or moved: look again now."""
        self.wake()

    async def one_pass(self) -> float | None:
        """Flush what is due; wait until the next timer, at most ``poll_interval_s``."""
        flushed = await self.flush_due()
        if flushed >= self._batch_size or self.stopping:
            return 0
        return await self._until_next_due()

    async def flush_due(self) -> int:
        """Flush every incident due now (up to ``batch_size``); return how many."""
        now = self._clock.now()
        due = await self._store.claim_due_incidents(now, self._batch_size, owner=self._owner,
                                                    lease_s=self._lease_s)
        CLAIMS.labels(role="incident").inc(len(due))
        unclaimed = False  # planned deliveries the dispatcher must claim by itself
        stuck = 0  # due incidents that failed and could not even be set aside
        for incident_id in due:
            if self.stopping:
                break
            try:
                planned, claimed_all = await self._flush(incident_id, now)
            except Exception as exc:  # noqa: BLE001 - quarantined, counted, logged once
                if not await self._quarantine(incident_id, now, exc):
                    stuck += 1
                continue
            unclaimed = unclaimed or (planned > 0 and not claimed_all)
        self._stalled = bool(due) and stuck == len(due)
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
        with contextlib.ExitStack() as stack:
            # A large flush runs with the collector paused until its result is dropped
            # (router/flush_offload.py): the stack closes after _attempts returned.
            return await self._attempts(incident_id, now, stack)

    async def _attempts(self, incident_id: str, now: datetime,
                        stack: contextlib.ExitStack) -> tuple[int, bool]:
        rules = self._rules()
        inhibit = rules.incident.inhibit_rules

        def keys(labels: Mapping[str, str]) -> list[TargetKey]:
            return target_keys(inhibit, labels) if inhibit else []

        storm = rules.incident.storm_control
        paused = False
        for _ in range(_ATTEMPTS):
            snapshot = await self._store.load_incident(
                incident_id, now, keys, storm.window if storm is not None else None)
            if snapshot is None:
                return 0, True
            due = snapshot.incident.due_at
            if due is None or due > now:
                return 0, True  # flushed meanwhile
            if (not paused and estimated_renders(snapshot.incident, snapshot.logs, rules)
                    >= LARGE_FLUSH_RENDERS):
                stack.enter_context(collector_paused())
                paused = True
            result = await plan_flush_off_loop(snapshot.incident, snapshot.alerts,
                                               snapshot.logs, snapshot.inhibited, rules, now,
                                               storm_recent=snapshot.storm_recent,
                                               ack_links=self._ack_links)
            claim = self._reserve_claim(now) if result.notices else None
            claimed: list[Delivery] | None = None
            try:
                claimed = await self._store.commit_flush(
                    snapshot, result, now=now, deadline_s=self._deadline_s,
                    storm_window_s=storm.window if storm is not None else None, claim=claim)
            finally:
                if claim is not None and self._dispatcher is not None:
                    self._dispatcher.offer(claimed or [], claim.slots)  # even after a failure
            if claimed is not None:
                INCIDENT_FLUSHES.labels(result="applied").inc()
                for stage, reason in result.failures:  # notices dead-lettered at plan time
                    PIPELINE_ITEM_FAILURES.labels(stage=stage, reason=reason).inc()
                for tier in result.escalated:
                    ACK_ESCALATIONS.labels(tier=str(tier)).inc()
                if result.reminders:
                    ACK_REMINDERS.inc(result.reminders)
                _log.info("incident.flushed", incident=incident_id, state=result.state,
                          deliveries=len(result.notices), cancelled=len(result.cancel),
                          claimed=len(claimed),
                          next_due_at=result.due_at.isoformat() if result.due_at else None)
                # A claim that stopped short of its slots took every delivery then due.
                done = (len(result.notices),
                        claim is not None and not claim.slots.filled(claimed))
                if paused:
                    release = release_off_loop(result, snapshot)
                    del result, snapshot
                    await release
                return done
            INCIDENT_FLUSHES.labels(result="conflict").inc()
            await asyncio.sleep(0)
        _log.warning("scheduler.flush_conflicts", incident=incident_id)
        return 0, True

    async def _quarantine(self, incident_id: str, now: datetime, exc: Exception) -> bool:
        """Set an incident whose flush raised aside (back-off); False if that failed too."""
        reason = failure_reason(exc)
        error = f"{reason}: {exc}"[:500]
        PIPELINE_ITEM_FAILURES.labels(stage="flush", reason=reason).inc()
        try:
            done = await self._store.quarantine_incident(
                incident_id, now=now, reason=reason, error=error,
                base_s=self._quarantine_base_s, cap_s=self._quarantine_cap_s)
        except Exception as store_exc:  # noqa: BLE001 - the store failed too: poll later
            _log.error("scheduler.flush_failed", incident=incident_id, reason=reason,
                       error=error, quarantined=False, store_error=repr(store_exc)[:200])
            return False
        failures, retry_at = done if done is not None else (0, None)
        # One line per failure; the traceback only with the first of a series.
        _log.error("scheduler.flush_failed", incident=incident_id, reason=reason, error=error,
                   failures=failures, retry_at=retry_at.isoformat() if retry_at else None,
                   exc_info=exc if failures == 1 else None)
        return True

    def _reserve_claim(self, now: datetime) -> FlushClaim | None:
        """The dispatcher's free send slots, as a claim for the flush's transaction."""
        if self._dispatcher is None:
            return None
        slots = self._dispatcher.reserve()
        if slots.total <= 0:
            return None
        # The lease starts at the commit, not at the flush's (older) ``now``; never before
        # ``now``, so the flush's own rows (due at ``now``) are due for the claim.
        return FlushClaim(slots=slots, lease_s=self._dispatcher.lease_s,
                          at=max(now, self._clock.now()))

    async def _flush_storms(self, now: datetime) -> int:
        rules = self._rules()
        if rules.incident.storm_control is None:
            return 0
        planned = 0
        for storm in await self._store.due_storms(now):
            try:
                items = tuple(StormItem(
                    id=s.id, title=s.group_labels.get("alertname") or s.id,
                    count=s.alerts_firing, started_at=s.started_at, state=s.state)
                    for s in storm.incidents)
                notices = plan_storm(storm.id, storm.audience,
                                     decision_from_json(storm.decision_json), items, rules, now)
                planned += await self._store.commit_storm(storm.id, notices, now=now,
                                                          deadline_s=self._deadline_s)
            except Exception as exc:  # noqa: BLE001 - postponed with back-off, counted, logged
                await self._postpone_storm(storm.id, now, exc)
                continue
            self._storm_failures.pop(storm.id, None)
            _log.info("incident.storm_summary", audience=storm.audience,
                      incidents=len(items), deliveries=len(notices))
        return planned

    async def _postpone_storm(self, storm_id: int, now: datetime, exc: Exception) -> None:
        reason = failure_reason(exc)
        PIPELINE_ITEM_FAILURES.labels(stage="flush", reason=reason).inc()
        failures = self._storm_failures[storm_id] = self._storm_failures.get(storm_id, 0) + 1
        delay = min(self._quarantine_cap_s,
                    self._quarantine_base_s * 2.0 ** min(failures - 1, 30))
        retry_at = now + timedelta(seconds=delay)
        _log.error("scheduler.storm_failed", storm=storm_id, reason=reason,
                   error=f"{reason}: {exc}"[:500], failures=failures,
                   retry_at=retry_at.isoformat(), exc_info=exc if failures == 1 else None)
        try:
            await self._store.postpone_storm(storm_id, retry_at)
        except Exception as store_exc:  # noqa: BLE001 - retried at the next pass
            _log.error("scheduler.storm_postpone_failed", storm=storm_id,
                       store_error=repr(store_exc)[:200])

    async def _until_next_due(self) -> float:
        """Seconds until the next incident timer, at most ``poll_interval_s``."""
        timeout = self._poll_interval_s or 0.0
        try:
            next_due = await self._store.next_incident_due()
        except Exception:  # noqa: BLE001 - a read failure: poll again later
            _log.exception("scheduler.next_due_failed")
            next_due = None
        if next_due is not None and not self._stalled:
            # (A stalled pass could set nothing aside: wait a poll interval, never spin.)
            timeout = min(timeout, max(0.0, (next_due - self._clock.now()).total_seconds()))
        return timeout
