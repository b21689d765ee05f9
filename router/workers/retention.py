"""The retention worker: keeps the state database from growing without bound.

Once at start and then every ``retention.interval_s``, it deletes routed intake rows,
dead-lettered intake rows, ended deliveries and resolved incidents older than their
configured age (see :mod:`router.store.sqlite.retention` for exactly what each covers),
in bounded steps with a pause between them so ingest and dispatch keep the writer. An
age of ``0`` keeps that history forever. Freed pages are reused by SQLite; the file
itself does not shrink (run ``VACUUM`` offline for that).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from router.clock import Clock
from router.config import RetentionConfig
from router.metrics import RETENTION_DELETED
from router.store.base import PRUNABLE, Prunable, PruneStep
from router.workers.loop import Loop

__all__ = ["Prunes", "RetentionWorker"]

_log = structlog.get_logger(__name__)


class Prunes(Protocol):
    """What the worker needs of the store."""

    async def prune_step(self, kind: Prunable, cutoff: datetime, cursor: int,
                         chunk: int) -> PruneStep:
        """Delete one bounded step of ``kind`` older than ``cutoff``."""
        ...


class RetentionWorker(Loop):
    """Runs retention passes until stopped."""

    name = "retention"
    failure_event = "retention.pass_failed"

    def __init__(self, store: Prunes, config: RetentionConfig, *, clock: Clock) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        # A failed pass (the store locked, the disk full) is tried again within a minute.
        super().__init__(poll_interval_s=config.interval_s,
                         error_backoff_s=min(60.0, config.interval_s),
                         max_backoff_s=config.interval_s)

    async def run_pass(self) -> dict[Prunable, int]:
        """One pass over every kind of history; returns the rows deleted per kind."""
        now = self._clock.now()
        deleted: dict[Prunable, int] = {}
        for kind in PRUNABLE:
            days = self._config.keep_days(kind)
            if days <= 0:
                continue
            deleted[kind] = await self._prune(kind, now - timedelta(days=days))
            if self.stopping:
                break
        return deleted

    async def _prune(self, kind: Prunable, cutoff: datetime) -> int:
        total, cursor = 0, 0
        while not self.stopping:
            step = await self._store.prune_step(kind, cutoff, cursor,
                                                self._config.batch_rows)
            total += step.deleted
            RETENTION_DELETED.labels(kind).inc(step.deleted)
            if step.done:
                break
            cursor = step.cursor
            await asyncio.sleep(self._config.pause_s)
        return total

    async def one_pass(self) -> float | None:
        """Prune now; the next pass after ``interval_s``."""
        deleted = await self.run_pass()
        if any(deleted.values()):
            _log.info("retention pass", **{f"{k}_deleted": n for k, n in deleted.items()})
        return None
