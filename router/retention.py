"""The retention worker: keeps the state database from growing without bound.

Once at start and then every ``retention.interval_s``, it deletes routed intake rows,
ended deliveries and resolved incidents older than their configured age (see
:mod:`router.store.sqlite.retention` for exactly what each covers), in bounded steps with a
pause between them so ingest and dispatch keep the writer. An age of ``0`` keeps that
history forever. Freed pages are reused by SQLite; the file itself does not shrink
(run ``VACUUM`` offline for that).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from pydantic import BaseModel, ConfigDict, Field

from router.clock import Clock
from router.metrics import RETENTION_DELETED
from router.store.base import PRUNABLE, Prunable, PruneStep

__all__ = ["Prunes", "RetentionConfig", "RetentionWorker"]

_log = structlog.get_logger(__name__)


class RetentionConfig(BaseModel):
    """The ``retention`` section: how long each kind of history is kept (days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intake_days: float = Field(default=7.0, ge=0)  # routed intake rows (the ingest log)
    deliveries_days: float = Field(default=90.0, ge=0)  # sent and dead-lettered deliveries
    incidents_days: float = Field(default=90.0, ge=0)  # resolved incidents and timelines
    interval_s: float = Field(default=3600.0, gt=0)  # time between two passes
    batch_rows: int = Field(default=2000, ge=1)  # rows deleted per transaction at most
    pause_s: float = Field(default=0.05, ge=0)  # pause between two transactions

    def keep_days(self, kind: Prunable) -> float:
        """The configured age of ``kind`` (0: keep forever)."""
        return {"intake": self.intake_days, "deliveries": self.deliveries_days,
                "incidents": self.incidents_days}[kind]


class Prunes(Protocol):
    """What the worker needs of the store."""

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Delete one bounded step of ``kind`` older than ``cutoff``."""
        ...


class RetentionWorker:
    """Runs retention passes until stopped."""

    def __init__(self, store: Prunes, config: RetentionConfig, *, clock: Clock) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = False

    async def run_pass(self) -> dict[Prunable, int]:
        """One pass over every kind of history; returns the rows deleted per kind."""
        now = self._clock.now()
        deleted: dict[Prunable, int] = {}
        for kind in PRUNABLE:
            days = self._config.keep_days(kind)
            if days <= 0:
                continue
            deleted[kind] = await self._prune(kind, now - timedelta(days=days))
            if self._stopping:
                break
        return deleted

    async def _prune(self, kind: Prunable, cutoff: datetime) -> int:
        total, cursor = 0, 0
        while not self._stopping:
            step = await self._store.prune_step(kind, cutoff, cursor,
                                                self._config.batch_rows)
            total += step.deleted
            RETENTION_DELETED.labels(kind).inc(step.deleted)
            if step.done:
                break
            cursor = step.cursor
            await asyncio.sleep(self._config.pause_s)
        return total

    async def run(self) -> None:
        """Prune now, then every ``interval_s``, until :meth:`stop`."""
        while not self._stopping:
            deleted = await self.run_pass()
            if any(deleted.values()):
                _log.info("retention pass", **{f"{k}_deleted": n for k, n in deleted.items()})
            with contextlib.suppress(TimeoutError):  # the interval ended: next pass
                async with asyncio.timeout(self._config.interval_s):
                    await self._wake.wait()

    async def stop(self) -> None:
        """Ask the loop to end after the current step."""
        self._stopping = True
        self._wake.set()
