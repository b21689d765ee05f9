"""Back-pressure: one decision, read by the webhook and by the Kafka source.

The backlog is sampled from the store (:meth:`router.store.Store.backlog`: unrouted
intake rows, incidents overdue, deliveries due now; indexed counts) every
``backpressure.check_interval_s``, never per request. The decision (:func:`decide`):

- **engaged** as soon as one stage exceeds its bound (``max_intake_pending``,
  ``max_overdue_incidents``, ``max_due_deliveries``);
- **released** once every stage is back at or below ``resume_ratio`` of its bound
  (hysteresis: ingest does not flap at the bound).

While engaged, the webhook answers 503 with ``Retry-After`` and persists nothing
(Alertmanager retries 5xx; a 200 still means "durably in the intake"), and the Kafka
source pauses its partitions (``tocsin_kafka_paused``). The webhook reads the last
decision (:attr:`Backpressure.engaged`, an attribute): its hot path queries nothing.

Each sample also sets the gauges ``tocsin_backlog_items{stage}``,
``tocsin_backlog_oldest_age_seconds{stage}`` and ``tocsin_backpressure_engaged{stage}``
(``/metrics`` refreshes the first two at each scrape as well).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from router.clock import Clock
from router.config.backpressure import BOUND_KEYS, BackpressureConfig
from router.logging import get_logger
from router.metrics import BACKLOG_ITEMS, BACKLOG_OLDEST_AGE, BACKPRESSURE_ENGAGED
from router.store.base import BACKLOG_STAGES, Backlog

__all__ = [
    "BacklogSource",
    "Backpressure",
    "Bound",
    "decide",
    "record_backlog",
]

_log = get_logger("router.backpressure")

_WHAT: Final = {
    "intake": "accepted alerts not yet routed",
    "incidents": "incidents overdue",
    "deliveries": "deliveries due and not sent",
}


@dataclass(frozen=True, slots=True)
class Bound:
    """The bound that holds ingest back: which stage, how many items, the limit."""

    stage: str
    items: int
    limit: int

    @property
    def key(self) -> str:
        """The config key of the bound, e.g. ``backpressure.max_overdue_incidents``."""
        return f"backpressure.{BOUND_KEYS[self.stage]}"

    def message(self) -> str:
        """What the webhook answers while this bound holds."""
        return (
            f"back-pressure: {self.items} {_WHAT[self.stage]} exceed {self.key} "
            f"({self.limit}); the alerts were not accepted, retry later"
        )


def decide(backlog: Backlog, config: BackpressureConfig, engaged: Bound | None) -> Bound | None:
    """The bound holding ingest back after ``backlog`` was measured (None: accept).

    Pure: engaged when a stage exceeds its bound; once engaged, released only when every
    stage is at or below ``resume_ratio`` of its bound.
    """
    if not config.enabled:
        return None
    for stage in BACKLOG_STAGES:
        items, limit = backlog.stage(stage).items, config.bound(stage)
        if items > limit:
            return Bound(stage, items, limit)
    if engaged is None:
        return None
    for stage in BACKLOG_STAGES:
        items, limit = backlog.stage(stage).items, config.bound(stage)
        if items > limit * config.resume_ratio:
            return Bound(stage, items, limit)
    return None


def record_backlog(backlog: Backlog, now: datetime) -> None:
    """Set ``tocsin_backlog_items`` and ``tocsin_backlog_oldest_age_seconds``."""
    for stage in BACKLOG_STAGES:
        part = backlog.stage(stage)
        BACKLOG_ITEMS.labels(stage=stage).set(part.items)
        BACKLOG_OLDEST_AGE.labels(stage=stage).set(part.age_s(now))


class BacklogSource(Protocol):
    """What back-pressure needs of the store (``router.store.Store`` satisfies it)."""

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog: ...


class Backpressure:
    """The shared decision: sampled by :meth:`sample` (the service's
    :class:`router.workers.backpressure.BackpressureSampler` calls it every
    ``check_interval_s``) or :meth:`refresh`, read by ingest."""

    def __init__(self, store: BacklogSource, config: BackpressureConfig, *,
                 clock: Clock) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._engaged: Bound | None = None
        self._intake_items = 0  # at the last sample
        self._added = 0  # alerts handed to the intake since the last sample
        self._sampled_at = float("-inf")  # monotonic
        self._lock = asyncio.Lock()
        #: The ``Retry-After`` header value while engaged.
        self.retry_after = str(config.retry_after_s)
        for stage in BACKLOG_STAGES:
            BACKPRESSURE_ENGAGED.labels(stage=stage).set(0)

    @property
    def config(self) -> BackpressureConfig:
        """The ``backpressure`` section in force."""
        return self._config

    @property
    def engaged(self) -> Bound | None:
        """The bound holding ingest back at the last sample, or None (accept)."""
        return self._engaged

    def note_intake(self, alerts: int) -> None:
        """``alerts`` were just written to the intake: :meth:`refresh` samples early when
        they could have pushed it over its bound (a pause then overshoots by one batch)."""
        self._added += alerts

    async def refresh(self) -> Bound | None:
        """Sample when the last sample is older than ``check_interval_s``, or when the
        intake may have crossed its bound since; return the decision."""
        stale = time.monotonic() - self._sampled_at >= self._config.check_interval_s
        may_cross = (self._engaged is None and
                     self._intake_items + self._added > self._config.max_intake_pending)
        if stale or may_cross:
            return await self.sample()
        return self._engaged

    async def sample(self) -> Bound | None:
        """Measure the backlog now, update the gauges and the decision; return it.

        A failing store keeps the previous decision (logged): ingest is not stopped, nor
        released, on a guess.
        """
        async with self._lock:
            self._sampled_at = time.monotonic()
            added, self._added = self._added, 0
            now = self._clock.now()
            try:
                backlog = await self._store.backlog(
                    now, overdue_grace_s=self._config.overdue_grace_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - unknown backlog: keep the decision
                self._added += added
                _log.warning("backpressure.backlog_unknown", error=str(exc),
                             error_type=type(exc).__name__)
                return self._engaged
            record_backlog(backlog, now)
            self._intake_items = backlog.intake.items
            self._set(decide(backlog, self._config, self._engaged))
            return self._engaged

    def _set(self, bound: Bound | None) -> None:
        before = self._engaged
        self._engaged = bound
        if (before and before.stage) == (bound and bound.stage):
            return
        for stage in BACKLOG_STAGES:
            BACKPRESSURE_ENGAGED.labels(stage=stage).set(
                1 if bound is not None and bound.stage == stage else 0)
        if bound is not None and before is None:
            _log.warning("backpressure.engaged", stage=bound.stage, items=bound.items,
                         bound=bound.key, limit=bound.limit)
        elif bound is None:
            _log.info("backpressure.released")
