"""The intake processor: routes persisted intake rows into the outbox.

Loop: fetch unprocessed intake rows in batches (oldest first), evaluate the rules, plan
the deliveries, then commit the deliveries and mark the rows processed in ONE store
transaction, then wake the dispatcher. A batch uses one rule set from start to end
(a hot reload swaps the reference between batches).

Crash safety: a crash after the intake commit and before the plan commit leaves the
rows unprocessed; they are planned again after the restart and the idempotency keys make
the second plan a no-op for anything already in the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from router.clock import Clock
from router.metrics import INTAKE_PENDING
from router.models import NewDelivery, RouteDecision
from router.planner import RulesView, plan
from router.store.base import Store

__all__ = ["IntakeProcessor", "RoutingRules"]

_log = structlog.get_logger(__name__)

_YIELD_EVERY = 64  # rows planned between two yields to the event loop
_GAUGE_REFRESH_S = 0.5


class RoutingRules(RulesView, Protocol):
    """What the processor needs of a rule set (``router.rules.RuleSet`` satisfies it)."""

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]: ...


class IntakeProcessor:
    """Routes intake rows into deliveries; one instance per service."""

    def __init__(
        self,
        store: Store,
        rules: Callable[[], RoutingRules],
        *,
        clock: Clock,
        deadline_s: float,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        on_planned: Callable[[], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._store = store
        self._rules = rules
        self._clock = clock
        self._deadline_s = deadline_s
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self.on_planned = on_planned
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()
        self._gauge_refreshed_at = float("-inf")

    def notify(self) -> None:
        """New intake rows were committed: process them now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Process until :meth:`stop`; on notify, or every ``poll_interval_s``."""
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                try:
                    processed = await self.process_once()
                except Exception:  # noqa: BLE001 - logged with traceback; the loop must live on
                    _log.exception("intake.batch_failed")
                    processed = 0
                await self._refresh_gauge()
                if processed >= self._batch_size or self._stopping:
                    continue  # a backlog: go on at once (or leave the loop)
                await self._wait()
        finally:
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Finish the current batch and return (no new batch is started)."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def process_once(self) -> int:
        """Route one batch of intake rows; return how many rows were processed."""
        rows = await self._store.fetch_intake(self._batch_size)
        if not rows:
            return 0
        rules = self._rules()  # one rule set for the whole batch
        deliveries: list[NewDelivery] = []
        for index, (intake_id, record) in enumerate(rows):
            alert = record.alert
            try:
                decisions = rules.evaluate(alert.labels)
                planned = plan(record, decisions, rules)
            except Exception:  # noqa: BLE001 - a bug must not block the intake forever
                # The row is still marked processed: re-trying a deterministic failure
                # would wedge every alert behind it. The traceback says what to fix.
                _log.exception("intake.route_failed", intake_id=intake_id,
                               fingerprint=alert.fingerprint)
                continue
            if not decisions:
                _log.warning("intake.unrouted", fingerprint=alert.fingerprint)
            _log.debug("intake.routed", intake_id=intake_id, fingerprint=alert.fingerprint,
                       routes=[d.route_id for d in decisions], deliveries=len(planned))
            deliveries.extend(planned)
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # planning is CPU work: let requests in
        inserted = await self._store.commit_plan(
            [intake_id for intake_id, _ in rows],
            deliveries,
            now=self._clock.now(),
            deadline_s=self._deadline_s,
        )
        _log.info("intake.batch_planned", alerts=len(rows), deliveries=inserted,
                  duplicates=len(deliveries) - inserted)
        if inserted and self.on_planned is not None:
            self.on_planned()
        return len(rows)

    async def _wait(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _refresh_gauge(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._gauge_refreshed_at < _GAUGE_REFRESH_S:
            return
        self._gauge_refreshed_at = now
        try:
            counts = await self._store.counts()
        except Exception:  # noqa: BLE001 - a metric must not stop routing
            _log.exception("intake.gauge_refresh_failed")
            return
        INTAKE_PENDING.set(counts["intake_pending"])
