"""The intake processor: intake rows → incidents (and their timers), one transaction per batch.

Messages are planned later by the scheduler (tests/incidents/); here: what the intake
itself guarantees.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from router.clock import FakeClock
from router.metrics import INTAKE_PENDING, REGISTRY
from router.models import RouteDecision
from router.rules import RuleSet, load_rules
from router.store import SqliteStore
from router.workers.intake import IntakeProcessor
from tests.store.factories import T0, make_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules([REPO / "rules"])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


def processor(store: SqliteStore, rules: object, **kwargs: object) -> IntakeProcessor:
    return IntakeProcessor(store, lambda: rules, clock=FakeClock(T0),  # type: ignore[arg-type,return-value]
                           deadline_s=600, **kwargs)  # type: ignore[arg-type]


async def test_rows_become_incidents_and_are_marked(
    store: SqliteStore, rules: RuleSet
) -> None:
    """A batch opens one incident per route and group, marks the rows, wakes the scheduler."""
    woken: list[bool] = []
    await store.append_intake([make_record("HostDown", instance="a"),
                               make_record("HostDown", instance="b"),
                               make_record("PaymentsDown", service="billing")])
    proc = processor(store, rules, on_planned=lambda: woken.append(True))
    assert await proc.process_once() == 3
    assert await proc.process_once() == 0
    assert woken == [True]
    incidents = await store.list_incidents()
    assert sorted(i.alerts_total for i in incidents) == [1, 2]
    assert len({i.route_id for i in incidents}) == 2
    assert all(i.due_at is not None and i.due_at > T0 for i in incidents)
    assert await store.list_deliveries() == []  # the scheduler plans after group_wait
    assert (await store.counts())["intake_pending"] == 0


async def test_duplicate_alert_state_plans_nothing_new(
    store: SqliteStore, rules: RuleSet
) -> None:
    """The same alert received again (HA replica, retry, replay) sets no timer."""
    woken: list[bool] = []
    proc = processor(store, rules, on_planned=lambda: woken.append(True))
    record = make_record("HostDown", instance="a")
    await store.append_intake([record])
    await proc.process_once()
    await store.append_intake([replace(record, received_at=T0 + timedelta(minutes=5))])
    assert await proc.process_once() == 1
    [incident] = await store.list_incidents()
    assert incident.alerts_total == 1
    assert woken == [True]


async def test_unprocessed_rows_are_routed_after_restart(
    tmp_path: Path, rules: RuleSet
) -> None:
    """Rows persisted before a crash (never routed) are routed by the next process."""
    path = str(tmp_path / "r.db")
    first = SqliteStore(path)
    await first.start()
    await first.append_intake([make_record("HostDown")])
    await first.close()  # dies before the processor ran
    store = SqliteStore(path)
    await store.start()
    try:
        assert await processor(store, rules).process_once() == 1
        assert len(await store.list_incidents()) == 1
    finally:
        await store.close()


async def test_a_batch_uses_one_rule_set_and_is_bounded(
    store: SqliteStore, rules: RuleSet
) -> None:
    """The rules callable is read once per batch; batch_size bounds a batch."""
    reads: list[int] = []

    def current() -> RuleSet:
        reads.append(1)
        return rules

    await store.append_intake([make_record("A", n=str(i)) for i in range(5)])
    proc = IntakeProcessor(store, current, clock=FakeClock(T0), deadline_s=60, batch_size=2)
    assert [await proc.process_once() for _ in range(4)] == [2, 2, 1, 0]
    assert len(reads) == 3


class ExplodingRules:
    """Delegates to real rules but raises for alerts named Boom (a routing bug)."""

    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules
        self.audiences = rules.audiences
        self.render = rules.render
        self.incident = rules.incident

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        if labels.get("alertname") == "Boom":
            raise ZeroDivisionError("bug")
        return self._rules.evaluate(labels)


async def test_a_routing_bug_does_not_block_other_alerts(
    store: SqliteStore, rules: RuleSet
) -> None:
    """An exception routing one alert is logged with traceback; the rest is planned."""
    await store.append_intake([make_record("Boom"), make_record("HostDown")])
    with capture_logs() as logs:
        assert await processor(store, ExplodingRules(rules)).process_once() == 2
    (entry,) = [e for e in logs if e["event"] == "intake.route_failed"]
    assert entry["exc_info"] is True
    assert [i.id for i in await store.list_incidents()]
    assert (await store.counts())["intake_pending"] == 0


async def test_run_processes_on_notify_and_stops(store: SqliteStore, rules: RuleSet) -> None:
    """run() routes rows when notified, keeps the pending gauge right, and stop() ends it."""
    INTAKE_PENDING.set(99)  # stale value from before: the loop must correct it
    proc = processor(store, rules, poll_interval_s=3600)
    task = asyncio.create_task(proc.run())
    for _ in range(2000):  # the first pass found nothing, set the gauge and parks for an hour
        if REGISTRY.get_sample_value("tocsin_intake_pending") == 0:
            break
        await asyncio.sleep(0.005)
    else:
        pytest.fail("the loop never made its first pass")
    await store.append_intake([make_record("HostDown")])
    proc.notify()
    for _ in range(2000):
        if (await store.counts())["intake_pending"] == 0:
            break
        await asyncio.sleep(0.005)
    await proc.stop()
    await task
    assert len(await store.list_incidents()) == 1
    assert REGISTRY.get_sample_value("tocsin_intake_pending") == 0


async def test_stop_before_run_returns(store: SqliteStore, rules: RuleSet) -> None:
    """stop() on a processor that never ran returns at once."""
    await processor(store, rules).stop()


class CountingRules(ExplodingRules):
    """Real rules that count how many label sets they were asked to route."""

    def __init__(self, rules: RuleSet) -> None:
        super().__init__(rules)
        self.calls = 0

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        self.calls += 1
        return super().evaluate(labels)


async def test_repeated_label_sets_are_routed_once_per_rule_set(
    store: SqliteStore, rules: RuleSet
) -> None:
    """A label set seen again is not re-evaluated; a new rule set evaluates it afresh."""
    current = CountingRules(rules)
    proc = IntakeProcessor(store, lambda: current, clock=FakeClock(T0),  # type: ignore[arg-type,return-value]
                           deadline_s=600)
    record = make_record("HostDown", instance="a")
    for minute in range(3):
        await store.append_intake([replace(record, received_at=T0 + timedelta(minutes=minute))])
        assert await proc.process_once() == 1
    assert current.calls == 1
    current = CountingRules(rules)  # a reload
    await store.append_intake([record])
    assert await proc.process_once() == 1
    assert current.calls == 1
    [incident] = await store.list_incidents()
    detail = await store.get_incident(incident.id)
    assert detail is not None
    assert [e.kind for e in detail.events].count("duplicate") == 3
