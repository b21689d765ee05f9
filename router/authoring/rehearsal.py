"""Rehearse a short incident life through the service's own pipeline, on a fake clock.

``tocsin rules test`` (rule test files and ``--labels``) shows what the service would
send by running the service: the alerts go into an in-memory SQLite store through the
intake processor (routing, grouping, the incident engine of the store's intake job), the
scheduler fires every incident timer at its due time and plans with
:func:`router.incidents.flush.plan_flush`, and the outbox rows are read back. The same
planner, template context, idempotency keys and render-failure handling as the running
service: nothing of the pipeline is re-implemented here, so a template that reads
``incident.follow_up`` or the alert count shows in a rule test what it will send.

A rehearsal is a list of :class:`Step`: at ``at``, the step's alerts are received (a
firing alert joins or re-fires, a resolved one resolves). Each step's window runs from
its ``at`` to the next step's ``at`` (excluded); the last one until the routes' longest
``group_wait``/``group_interval`` after it (what its own changes cause). The outbox rows
the scheduler writes inside a window are that step's messages.

After every flush the deliveries due then are marked sent, like a dispatcher that sends
instantly (a rule test sends nothing): a first notice is out before the incident
resolves, so a later resolution is a ``resolved`` notice, not the ``summary`` that
replaces a first notice still queued. Notices held by quiet hours stay pending until
their hold ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog.testing

from router.acks import AckBy
from router.clock import FakeClock
from router.errors import UserError
from router.models import Alert, Delivery, IntakeRecord, Receipt
from router.rules.ruleset import RuleSet
from router.store.sqlite import SqliteStore
from router.workers.acks import AckService
from router.workers.intake import IntakeProcessor
from router.workers.scheduler import Scheduler

__all__ = ["RULES_TEST_META", "Step", "rehearse", "rehearse_async", "settle_s"]

#: The webhook envelope of the alerts a rule test receives (``meta`` in templates).
RULES_TEST_META: Mapping[str, str] = {"receiver": "tocsin-rules-test"}
#: Deliveries are never really sent here; their deadline only needs to outlive the
#: rehearsal.
_DEADLINE_S = 30 * 86400.0
#: Deliveries marked sent per claim (the rehearsal's instant dispatcher) and their lease.
_SEND_BATCH = 10_000
_SEND_LEASE_S = 60.0
#: Timers fired per window at most (a bound against a rule set that re-arms forever).
_MAX_FLUSHES = 10_000


@dataclass(frozen=True, slots=True)
class Step:
    """At ``at``, receive ``alerts`` (each firing or resolved, as Alertmanager sends)."""

    at: datetime
    alerts: tuple[Alert, ...] = ()
    acknowledge: str | None = None  # a contact id answering what asked it, at ``at``


def settle_s(rules: RuleSet, alerts: Sequence[Alert]) -> float:
    """How long the changes ``alerts`` make take to be notified: the longest
    ``group_wait`` / ``group_interval`` of the routes they match (at least one second)."""
    longest = 1.0
    for alert in alerts:
        for decision in rules.evaluate(alert.labels):
            policy = decision.policy
            longest = max(longest, policy.group_wait_s, policy.group_interval_s)
    return longest


def rehearse(rules: RuleSet, steps: Sequence[Step], *,
             meta: Mapping[str, str] = RULES_TEST_META) -> list[list[Delivery]]:
    """The outbox rows the service writes in each step's window (oldest first)."""
    return asyncio.run(rehearse_async(rules, steps, meta=meta))


async def rehearse_async(rules: RuleSet, steps: Sequence[Step], *,
                         meta: Mapping[str, str] = RULES_TEST_META) -> list[list[Delivery]]:
    """:func:`rehearse` inside a running event loop."""
    if not steps:
        return []
    clock = FakeClock(steps[0].at)
    store = SqliteStore(":memory:")
    await store.start()
    # The pipeline logs unreachable contacts, render failures...: a rehearsal reports
    # them through the outbox rows it returns, so keep the output clean.
    with structlog.testing.capture_logs():
        try:
            processor = IntakeProcessor(store, lambda: rules, clock=clock,
                                        deadline_s=_DEADLINE_S)
            scheduler = Scheduler(store, lambda: rules, clock=clock, deadline_s=_DEADLINE_S)
            windows: list[list[Delivery]] = []
            known: set[int] = set()
            for index, step in enumerate(steps):
                if index + 1 < len(steps):
                    end, inclusive = steps[index + 1].at, False
                else:
                    wait = settle_s(rules, [a for s in steps for a in s.alerts])
                    end, inclusive = step.at + timedelta(seconds=wait), True
                if step.at > clock.now():
                    clock.set(step.at)
                if step.alerts:
                    await store.append_intake([
                        IntakeRecord(source="rules-test", received_at=clock.now(), alert=a,
                                     meta=dict(meta)) for a in step.alerts])
                    while await processor.process_once():
                        pass
                if step.acknowledge is not None:
                    await _answer(store, rules, step.acknowledge, clock.now())
                await _flush_until(store, scheduler, clock, end, inclusive=inclusive)
                rows = sorted(await store.list_deliveries(limit=1_000_000),
                              key=lambda d: d.id)
                windows.append([d for d in rows if d.id not in known])
                known.update(d.id for d in rows)
            return windows
        finally:
            await store.close()


async def _answer(store: SqliteStore, rules: RuleSet, contact_id: str, at: datetime) -> None:
    """``contact_id`` answers every open incident waiting for its answer (by SMS), through
    the service's own acknowledgement path."""
    service = AckService(store, lambda: rules)
    for request in await store.pending_acks([contact_id]):
        await service.acknowledge(request.incident_id, by=AckBy("", contact_id),
                                  channel="sms", at=at)


async def _flush_until(store: SqliteStore, scheduler: Scheduler, clock: FakeClock,
                       end: datetime, *, inclusive: bool) -> None:
    """Fire every incident timer due before ``end`` (or at it), each at its due time."""
    for _ in range(_MAX_FLUSHES):
        await scheduler.flush_due()
        await _send_due(store, clock.now())
        due = await store.next_incident_due()
        if due is None or due > end or (due == end and not inclusive):
            return
        if due > clock.now():
            clock.set(due)
    raise UserError(f"incident timers keep firing before {end.isoformat()}: more than "
                    f"{_MAX_FLUSHES} flushes in one step (shorten the step)")


async def _send_due(store: SqliteStore, now: datetime) -> None:
    """Mark every delivery due at ``now`` sent (in the dispatcher's claim order)."""
    while batch := await store.claim_due(now, _SEND_BATCH, _SEND_LEASE_S):
        for delivery in batch:
            await store.mark_sent(delivery.id, now, Receipt(detail="rules test"))
