"""The scheduler: the one loop that drives every incident timer.

Timers are rows (``incidents.due_at``), so a restart neither loses nor re-fires them:
the scheduler asks the store which incidents are due at ``clock.now()``, computes each
flush with the pure :func:`router.incidents.flush.plan_flush`, and commits it (new
deliveries, notification log, next timer) in one transaction. A flush computed from a
snapshot that changed meanwhile (an alert arrived, a held delivery was claimed) is not
applied; the incident is read and computed again.

The clock is injected: tests drive :meth:`Scheduler.flush_due` with a
:class:`~router.clock.FakeClock`; the running loop sleeps until the next timer, at most
``poll_interval_s``, or until :meth:`notify` (an intake batch set a timer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

import structlog

from router.clock import Clock
from router.incidents.flush import FlushRules, plan_flush, plan_storm
from router.incidents.state import decision_from_json
from router.incidents.view import StormItem
from router.metrics import INCIDENT_FLUSHES
from router.rules.inhibit import TargetKey, target_keys
from router.store.incidents import IncidentStore

__all__ = ["Scheduler"]

_log = structlog.get_logger(__name__)

_ATTEMPTS = 5  # recomputations of one flush after conflicts before leaving it for later


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
    ) -> None:
        self._store = store
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
        planned = 0
        for incident_id in due:
            if self._stopping:
                break
            planned += await self.flush_one(incident_id, now)
        planned += await self._flush_storms(now)
        if planned and self.on_planned is not None:
            self.on_planned()
        return len(due)

    async def flush_one(self, incident_id: str, now: datetime) -> int:
        """Flush one incident; return the number of deliveries planned."""
        rules = self._rules()
        inhibit = rules.incident.inhibit_rules

        def keys(labels: Mapping[str, str]) -> list[TargetKey]:
            return target_keys(inhibit, labels) if inhibit else []

        storm = rules.incident.storm_control
        for _ in range(_ATTEMPTS):
            snapshot = await self._store.load_incident(
                incident_id, now, keys, storm.window if storm is not None else None)
            if snapshot is None:
                return 0
            due = snapshot.incident.due_at
            if due is None or due > now:
                return 0  # flushed meanwhile
            result = plan_flush(snapshot.incident, snapshot.alerts, snapshot.logs,
                                snapshot.inhibited, rules, now,
                                storm_recent=snapshot.storm_recent)
            if await self._store.commit_flush(
                    snapshot, result, now=now, deadline_s=self._deadline_s,
                    storm_window_s=storm.window if storm is not None else None):
                INCIDENT_FLUSHES.labels(result="applied").inc()
                _log.info("incident.flushed", incident=incident_id, state=result.state,
                          deliveries=len(result.notices), cancelled=len(result.cancel),
                          next_due_at=result.due_at.isoformat() if result.due_at else None)
                return len(result.notices)
            INCIDENT_FLUSHES.labels(result="conflict").inc()
            await asyncio.sleep(0)
        _log.warning("scheduler.flush_conflicts", incident=incident_id)
        return 0

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
