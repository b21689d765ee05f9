"""The intake processor: routes persisted intake rows into incidents.

Loop: fetch unprocessed intake rows in batches (oldest first), evaluate the rules, turn
every (alert, matched route) into an :class:`~router.incidents.engine.AlertEvent` of its
group, then apply the events to the incidents (open, join, resolve, duplicate, timers),
update the inhibition sources and mark the rows processed in ONE store transaction, then
wake the scheduler. Messages are planned by the scheduler when an incident's timer fires
(``group_wait`` after it opened, ``group_interval`` after a change). A batch uses one
rule set from start to end (a hot reload swaps the reference between batches). The
service loop routes the next batch while the previous one commits (see :meth:`run`).

A row whose routing raises (a bug, a value the rules cannot handle) is set aside: it is
dead-lettered (``intake.dead_at``, ``dead_letter_reason``) in the batch's transaction,
not marked processed, counted in ``tocsin_pipeline_item_failures_total{stage="intake"}``,
listed by ``GET /api/v1/intake?status=dead`` and replayed with ``tocsin intake retry``;
the other rows of the batch are routed as usual.

Crash safety: a crash after the intake commit and before the incident commit leaves the
rows unprocessed; they are applied again after the restart (nothing was written).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from router.bytecache import ENTRY_OVERHEAD, ByteLRU, labels_bytes
from router.clock import Clock
from router.errors import StoreUnavailable
from router.incidents.engine import AlertEvent, sender_of
from router.incidents.flush import FlushRules, failure_reason
from router.incidents.grouping import group_key, group_labels
from router.metrics import CLAIMS, INCIDENT_ALERT_EVENTS, INTAKE_PENDING, PIPELINE_ITEM_FAILURES
from router.models import IncidentPolicy, IntakeRecord, RouteDecision
from router.rules.inhibit import SourceKey, source_keys
from router.rules.tree import Route
from router.store.base import CLAIM_LEASE_S, IncidentConflict, SourceUpdate, Store, claim_owner
from router.workers.loop import Loop

__all__ = ["IntakeProcessor", "RoutingRules"]

_log = structlog.get_logger(__name__)

_YIELD_EVERY = 64  # rows planned between two yields to the event loop
_GAUGE_REFRESH_S = 0.5
#: Under load (the last batch held at least ``_BUSY_ROWS`` rows) wait this long before
#: fetching again, so that rows arriving meanwhile join one bigger batch: fewer fetches
#: and commits per alert, and the HTTP side keeps the event loop. An idle service (a
#: lone alert) is routed at once: the pause applies only after a busy batch.
_BUSY_ROWS = 16
_COALESCE_S = 0.005


@dataclass(frozen=True, slots=True)
class _Plan:
    """A routed batch, ready to commit: its intake ids, incident events, inhibition sources."""

    intake_ids: list[int]  # routed: marked processed
    events: list[AlertEvent]
    sources: list[SourceUpdate]
    dead: list[tuple[int, str]] = field(default_factory=list)  # routing raised: (id, reason)
    #: Per routed row: (intake id, its events, its inhibition source update), to commit
    #: rows one by one when the batch's commit raised.
    parts: list[tuple[int, tuple[AlertEvent, ...], SourceUpdate | None]] = field(
        default_factory=list)

    @property
    def rows(self) -> int:
        """Rows this batch settles (routed or dead-lettered)."""
        return len(self.intake_ids) + len(self.dead)

    @property
    def last_id(self) -> int:
        """The highest intake id of the batch."""
        return max(self.intake_ids[-1] if self.intake_ids else 0,
                   max((i for i, _ in self.dead), default=0))


@dataclass(frozen=True, slots=True)
class _Routed:
    """What the rules make of one label set: (decision, group key, group labels) per
    matched route, and the inhibition source keys. Pure in the labels and the rules."""

    labels: Mapping[str, str]  # the label set this verdict is for (checked on every hit)
    groups: tuple[tuple[RouteDecision, str, Mapping[str, str]], ...]
    sources: tuple[SourceKey, ...]


def _routed_bytes(fingerprint: str, routed: _Routed) -> int:
    """What a memo entry keeps alive: the labels, and each group's key and labels."""
    return (len(fingerprint) + labels_bytes(routed.labels) + ENTRY_OVERHEAD
            + sum(len(key) + labels_bytes(grouped) + ENTRY_OVERHEAD
                  for _, key, grouped in routed.groups)
            + ENTRY_OVERHEAD * len(routed.sources))


class RoutingRules(FlushRules, Protocol):
    """What the processor needs of a rule set (``router.rules.RuleSet`` satisfies it)."""

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]: ...

    def route_at(self, position: str) -> Route | None: ...


#: Commit failures of the store itself, not of a row: the batch is retried as it is.
_TRANSIENT = (StoreUnavailable, IncidentConflict)


class IntakeProcessor(Loop):
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
        timer_scale: float = 1.0,
        lease_s: float = CLAIM_LEASE_S,
    ) -> None:
        """``on_planned`` is called when a batch set or moved an incident timer (wake the
        scheduler); ``timer_scale`` multiplies the rule timers (tests, demos); ``lease_s``:
        how long a claim on a batch of intake rows holds."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._store = store
        self._rules = rules
        self._clock = clock
        self._deadline_s = deadline_s
        self._batch_size = batch_size
        self.on_planned = on_planned
        self._timer_scale = timer_scale
        super().__init__(poll_interval_s=poll_interval_s)
        self._in_flight: asyncio.Task[bool] | None = None  # the batch being committed
        self._last_id = 0  # the highest intake id of the batch in flight
        self._coalesce = False  # the last pass was busy: pause before the next fetch
        self._lease_s = lease_s
        self._owner = claim_owner("intake")
        self._gauge_refreshed_at = float("-inf")
        self._memo_rules: RoutingRules | None = None
        self._memo: ByteLRU[str, _Routed] = ByteLRU(_routed_bytes, share="routes")

    name = "intake"
    failure_event = "intake.batch_failed"

    def notify(self) -> None:
        """New intake rows were committed: process them now rather than at the next poll."""
        self.wake()

    # The loop (router.workers.loop.Loop.run): process until stop(); on notify, or every
    # poll_interval_s.
    #
    # Pipelined under a backlog (a full batch): the next batch is fetched and routed
    # while the previous one commits in the store's writer thread; below a full batch
    # the commit is awaited before waiting for new rows. Commits still happen one at
    # a time, in id order: a batch is handed to the store only after the one before it
    # committed, and if that one failed, the batch routed behind it is dropped and both
    # are fetched again (their rows are still unprocessed).

    async def on_start(self) -> None:
        """Upgrade the legacy incidents before routing anything."""
        self._in_flight, self._last_id, self._coalesce = None, 0, False
        try:
            await self.upgrade_legacy_incidents()
        except Exception:  # noqa: BLE001 - logged; such incidents still resolve normally
            _log.exception("intake.legacy_upgrade_failed")

    async def one_pass(self) -> float | None:
        """Fetch, route and hand one batch to the store (overlapped with the commit of
        the batch before it under a backlog)."""
        if self._coalesce:
            # Under load, rows arriving meanwhile join one bigger batch.
            self._coalesce = False
            await asyncio.sleep(_COALESCE_S)
        processed = 0
        try:
            rows = await self._claim(self._last_id if self._in_flight is not None else 0)
            plan = await self._plan(rows) if rows else None
            if self._in_flight is not None:
                committed, self._in_flight = await self._in_flight, None
                if not committed:
                    plan = None  # fetched again, in order, from the first unprocessed
            if plan is not None:
                self._in_flight = asyncio.create_task(self._commit_logged(plan))
                self._last_id = plan.last_id
                processed = plan.rows
        finally:
            await self._refresh_gauge()
        if processed >= self._batch_size or self.stopping:
            return 0  # a backlog: go on at once, overlapped (or leave the loop)
        if self._in_flight is not None:
            # No backlog: let the commit finish before waiting, so that rows arriving
            # meanwhile join the next batch instead of making small overlapped ones
            # (each commit costs its fsync).
            await self._in_flight
            self._in_flight = None
        self._coalesce = processed >= _BUSY_ROWS
        return None

    async def on_stop(self) -> None:
        """Let the batch in flight commit."""
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)
            self._in_flight = None

    async def upgrade_legacy_incidents(self) -> int:
        """Give the open incidents opened before route identities (route id ``root/2``)
        the identity of their route, so re-sent alerts join them; how many were.

        The route now at the incident's position is taken only when it is visibly the same
        route (same name, template, audiences and grouping as the incident's decision
        snapshot): after an upgrade that also edited the tree, an incident that does not
        match stays under its old key, still open, and resolves normally.
        """
        rules = self._rules()

        def identity(position: str, decision: RouteDecision) -> str | None:
            route = rules.route_at(position)
            if route is None or (route.name, route.template, route.audiences, route.group_by,
                                 route.group_by_all) != (
                    decision.route_name, decision.template, decision.audiences,
                    decision.group_by, decision.group_by_all):
                return None
            return route.route_id

        count = await self._store.upgrade_legacy_incidents(identity)
        if count:
            _log.info("intake.legacy_incidents_upgraded", incidents=count)
        return count

    async def process_once(self) -> int:
        """Route one batch of intake rows; return how many rows were processed."""
        rows = await self._claim()
        if not rows:
            return 0
        plan = await self._plan(rows)
        try:
            await self._commit(plan)
        except Exception as exc:
            # As in the loop: a row the store cannot apply is set aside, row by row.
            if isinstance(exc, _TRANSIENT) or not await self._commit_rows(plan):
                raise
        return plan.rows

    async def _claim(self, after_id: int = 0) -> list[tuple[int, IntakeRecord]]:
        """Lease the next batch of intake rows (another worker skips them meanwhile)."""
        rows = await self._store.claim_intake(
            self._batch_size, owner=self._owner, now=self._clock.now(),
            lease_s=self._lease_s, after_id=after_id)
        CLAIMS.labels(role="intake").inc(len(rows))
        return rows

    async def _plan(self, rows: Sequence[tuple[int, IntakeRecord]]) -> _Plan:
        """Route ``rows`` (one rule set for the whole batch) into incident events."""
        rules = self._rules()
        inhibit = rules.incident.inhibit_rules
        log = _log.bind()  # one logger per batch (binding per row costs more than routing)
        debug = log.is_enabled_for(logging.DEBUG)
        events: list[AlertEvent] = []
        sources: list[SourceUpdate] = []
        routed_ids: list[int] = []
        dead: list[tuple[int, str]] = []
        parts: list[tuple[int, tuple[AlertEvent, ...], SourceUpdate | None]] = []
        for index, (intake_id, record) in enumerate(rows):
            alert = record.alert
            try:
                routed = self._route(rules, alert.fingerprint, alert.labels)
                sender = sender_of(record.source, record.meta)
                row_events = [AlertEvent(
                    decision=decision, group_key=key, group_labels=labels, alert=alert,
                    source=record.source, sender=sender, intake_id=intake_id,
                    meta=record.meta)
                    for decision, key, labels in routed.groups]
            except Exception as exc:
                # Dead-lettered, not processed: retrying a deterministic failure would wedge
                # every alert behind it; marking it processed would lose it silently.
                reason = failure_reason(exc)
                dead.append((intake_id, f"{reason}: {exc}"[:500]))
                PIPELINE_ITEM_FAILURES.labels(stage="intake", reason=reason).inc()
                log.error("intake.route_failed", intake_id=intake_id,
                          fingerprint=alert.fingerprint, reason=reason, error=str(exc)[:200],
                          exc_info=True)
                continue
            events.extend(row_events)
            source = None
            if inhibit:
                source = SourceUpdate(alert.fingerprint, alert.status == "firing",
                                      routed.sources)
                sources.append(source)
            routed_ids.append(intake_id)
            parts.append((intake_id, tuple(row_events), source))
            if not routed.groups:
                log.warning("intake.unrouted", fingerprint=alert.fingerprint)
            if debug:
                log.debug("intake.routed", intake_id=intake_id, fingerprint=alert.fingerprint,
                          routes=[d.route_id for d, _, _ in routed.groups])
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # routing is CPU work: let requests in
        return _Plan(routed_ids, events, sources, dead, parts)

    async def _commit(self, plan: _Plan) -> None:
        """Apply a routed batch to the incidents and mark its rows processed (one commit)."""
        earliest = await self._store.commit_intake(
            plan.intake_ids, plan.events, plan.sources, now=self._clock.now(), dead=plan.dead)
        INCIDENT_ALERT_EVENTS.inc(len(plan.events))
        _log.info("intake.batch_applied", alerts=len(plan.intake_ids), events=len(plan.events),
                  dead_lettered=len(plan.dead),
                  next_due_at=earliest.isoformat() if earliest else None)
        if earliest is not None and self.on_planned is not None:
            self.on_planned()

    async def _commit_logged(self, plan: _Plan) -> bool:
        """:meth:`_commit` for the pipelined loop: False (logged) when it failed.

        A batch whose commit raised for another reason than the store itself
        (``StoreUnavailable``: disk, lock; ``IncidentConflict``: another writer
        changed an incident meanwhile) is committed again row by row, so
        that one row the store cannot apply is dead-lettered instead of wedging the
        intake; False when that fails too (the rows stay unprocessed)."""
        try:
            await self._commit(plan)
        except Exception as exc:  # noqa: BLE001 - logged with traceback
            _log.exception("intake.batch_failed")
            if isinstance(exc, _TRANSIENT) or plan.rows == 0:
                return False
            return await self._commit_rows(plan)
        return True

    async def _commit_rows(self, plan: _Plan) -> bool:
        """Commit each row of a failed batch alone; dead-letter the rows that fail."""
        try:
            if plan.dead:
                await self._store.dead_letter_intake(plan.dead, now=self._clock.now())
            for intake_id, events, source in plan.parts:
                one = _Plan([intake_id], list(events), [source] if source else [])
                try:
                    await self._commit(one)
                except Exception as exc:
                    if isinstance(exc, _TRANSIENT):
                        raise
                    reason = failure_reason(exc)
                    PIPELINE_ITEM_FAILURES.labels(stage="intake", reason=reason).inc()
                    _log.error("intake.apply_failed", intake_id=intake_id, reason=reason,
                               error=str(exc)[:200])
                    await self._store.dead_letter_intake(
                        [(intake_id, f"{reason}: {exc}"[:500])], now=self._clock.now())
        except Exception:  # noqa: BLE001 - the store itself fails: retried later
            _log.exception("intake.batch_failed")
            return False
        return True

    def _route(self, rules: RoutingRules, fingerprint: str,
               labels: Mapping[str, str]) -> _Routed:
        """The rules' verdict on ``labels``, memoised per rule set.

        Senders repeat the same label sets (every group flush, ``repeat_interval``, HA
        pairs): routing, grouping and inhibition keys are computed once per label set and
        rule set. Looked up by fingerprint (a string: no per-alert key objects for the
        garbage collector), confirmed by comparing the labels (a colliding fingerprint is
        only a miss). Bounded in bytes (``memory.cache_bytes``), least recently used out.
        """
        memo = self._memo
        if rules is not self._memo_rules:
            self._memo_rules = rules
            memo.clear()
        routed = memo.get(fingerprint)
        if routed is None or routed.labels != labels:
            groups = []
            for decision in rules.evaluate(labels):
                grouped = group_labels(decision, labels)
                groups.append((self._scaled(decision), group_key(decision.route_id, grouped),
                               grouped))
            inhibit = rules.incident.inhibit_rules
            keys = tuple(source_keys(inhibit, labels)) if inhibit else ()
            routed = _Routed(labels, tuple(groups), keys)
            memo.put(fingerprint, routed)
        return routed

    def _scaled(self, decision: RouteDecision) -> RouteDecision:
        scale = self._timer_scale
        if scale == 1.0:
            return decision
        p = decision.policy
        policy: IncidentPolicy = replace(
            p, group_wait_s=p.group_wait_s * scale, group_interval_s=p.group_interval_s * scale,
            repeat_interval_s=p.repeat_interval_s * scale,
            follow_up_after_s=(p.follow_up_after_s * scale
                               if p.follow_up_after_s is not None else None))
        return replace(decision, policy=policy)

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
