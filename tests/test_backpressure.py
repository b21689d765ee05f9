"""The backlog per stage (store), the back-pressure decision and its sampler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from router.backpressure import Backpressure, Bound, decide
from router.clock import FakeClock
from router.config import BackpressureConfig
from router.metrics import REGISTRY
from router.models import IntakeRecord
from router.store import Backlog, SqliteStore, StageBacklog
from tests.incidents.harness import T_MON_10, Harness, load, make_alert


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def h(tmp_path: Path, store: SqliteStore) -> Harness:
    return Harness(store, load(tmp_path), FakeClock(T_MON_10))


def _gauge(name: str, stage: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"stage": stage})


async def _open_incidents(h: Harness, count: int) -> None:
    """``count`` incidents (one alert name each), due group_wait (30 s) from now."""
    await h.receive(*(make_alert(f"Flood{i}", starts_at=h.clock.now()) for i in range(count)))


def _backlog(intake: int = 0, incidents: int = 0, deliveries: int = 0) -> Backlog:
    return Backlog(intake=StageBacklog(intake, None), incidents=StageBacklog(incidents, None),
                   deliveries=StageBacklog(deliveries, None))


# -- the store: what is due and not done, per stage ---------------------------------------

async def test_incidents_due_and_not_flushed_are_overdue_after_the_grace(h: Harness) -> None:
    """Reproducer of the flood: incidents past their timer with the scheduler stopped are
    counted, with the oldest due time; within the grace they are not (yet) overdue."""
    await _open_incidents(h, 3)
    store = h.store
    assert (await store.backlog(T_MON_10 + timedelta(seconds=29))).incidents.items == 0
    within = await store.backlog(T_MON_10 + timedelta(seconds=33), overdue_grace_s=5)
    assert within.incidents == StageBacklog(0, None)
    late = await store.backlog(T_MON_10 + timedelta(seconds=60), overdue_grace_s=5)
    assert late.incidents == StageBacklog(3, T_MON_10 + timedelta(seconds=30))
    assert late.incidents.age_s(T_MON_10 + timedelta(seconds=60)) == 30.0
    assert late.intake == StageBacklog(0, None)  # routed: the backlog is in the scheduler


async def test_flushed_incidents_leave_the_backlog_and_their_notices_are_due(h: Harness) -> None:
    """After the scheduler flushed them, no incident is overdue; the first notices planned
    are deliveries due now until sent, aged from their due time."""
    await _open_incidents(h, 3)
    planned = await h.tick(60)
    assert len(planned) == 6  # two contacts of `ops` per incident
    later = h.clock.now() + timedelta(seconds=10)
    backlog = await h.store.backlog(later, overdue_grace_s=5)
    assert backlog.incidents.items == 0
    assert backlog.deliveries == StageBacklog(6, h.clock.now())
    assert backlog.deliveries.age_s(later) == 10.0


async def test_unrouted_intake_is_aged_from_its_oldest_row(h: Harness) -> None:
    """Intake rows not yet routed count, the oldest one aged from when it was received."""
    first = h.clock.now()
    for i in range(2):
        await h.store.append_intake([IntakeRecord(
            source="alertmanager", received_at=h.clock.advance(1),
            alert=make_alert(f"Unrouted{i}", starts_at=first), meta={})])
    backlog = await h.store.backlog(first + timedelta(seconds=11))
    assert backlog.intake == StageBacklog(2, first + timedelta(seconds=1))
    assert backlog.intake.age_s(first + timedelta(seconds=11)) == 10.0


# -- the decision ---------------------------------------------------------------------------

def test_engages_over_any_bound_and_names_it() -> None:
    """Each stage's bound engages on its own; the bound says which key to raise."""
    config = BackpressureConfig(max_intake_pending=10, max_overdue_incidents=5,
                                max_due_deliveries=20)
    assert decide(_backlog(10, 5, 20), config, None) is None  # at the bound: accepted
    bound = decide(_backlog(incidents=6), config, None)
    assert bound == Bound("incidents", 6, 5)
    assert bound is not None and bound.key == "backpressure.max_overdue_incidents"
    assert "6 incidents overdue exceed backpressure.max_overdue_incidents (5)" in bound.message()
    assert decide(_backlog(intake=11), config, None) == Bound("intake", 11, 10)
    assert decide(_backlog(deliveries=21), config, None) == Bound("deliveries", 21, 20)


def test_releases_only_below_the_resume_ratio_of_every_bound() -> None:
    """Hysteresis: once engaged, ingest stays held until every stage is at or below
    resume_ratio of its bound (no flapping at the bound)."""
    config = BackpressureConfig(max_intake_pending=10, max_overdue_incidents=10,
                                resume_ratio=0.8)
    engaged = decide(_backlog(intake=11), config, None)
    assert engaged is not None
    assert decide(_backlog(intake=9), config, engaged) == Bound("intake", 9, 10)
    assert decide(_backlog(intake=8, incidents=9), config, engaged) == Bound("incidents", 9, 10)
    assert decide(_backlog(intake=8, incidents=8), config, engaged) is None
    assert decide(_backlog(intake=9), config, None) is None  # not engaged: below the bound


def test_disabled_never_engages() -> None:
    """backpressure.enabled false: the backlog is measured, ingest never held."""
    assert decide(_backlog(10**9, 10**9, 10**9), BackpressureConfig(enabled=False), None) is None


# -- the sampler ----------------------------------------------------------------------------

async def test_sample_sets_the_gauges_and_the_decision(h: Harness) -> None:
    """A sample exports items and oldest age per stage, and engages on overdue incidents;
    it releases once the scheduler caught up."""
    await _open_incidents(h, 4)
    h.clock.advance(90)
    pressure = Backpressure(h.store, BackpressureConfig(max_overdue_incidents=3), clock=h.clock)
    assert await pressure.sample() == Bound("incidents", 4, 3)
    assert pressure.engaged == Bound("incidents", 4, 3)
    assert _gauge("tocsin_backlog_items", "incidents") == 4
    assert _gauge("tocsin_backlog_oldest_age_seconds", "incidents") == 60
    assert _gauge("tocsin_backpressure_engaged", "incidents") == 1
    assert _gauge("tocsin_backpressure_engaged", "intake") == 0
    await h.tick(0)
    assert await pressure.sample() is None
    assert _gauge("tocsin_backlog_items", "incidents") == 0
    assert _gauge("tocsin_backlog_oldest_age_seconds", "incidents") == 0
    assert _gauge("tocsin_backlog_items", "deliveries") == 8
    assert _gauge("tocsin_backpressure_engaged", "incidents") == 0


class _BrokenStore:
    """A store whose backlog query fails (disk gone)."""

    def __init__(self) -> None:
        self.calls = 0

    async def backlog(self, now: datetime, *, overdue_grace_s: float = 0.0) -> Backlog:
        self.calls += 1
        raise OSError("injected: disk unavailable")


async def test_a_failing_store_keeps_the_previous_decision(h: Harness) -> None:
    """Unknown backlog: ingest is neither held nor released on a guess."""
    await _open_incidents(h, 2)
    h.clock.advance(90)
    pressure = Backpressure(h.store, BackpressureConfig(max_overdue_incidents=1), clock=h.clock)
    engaged = await pressure.sample()
    assert engaged is not None
    broken = _BrokenStore()
    pressure._store = broken  # the same sampler, its store now failing
    assert await pressure.sample() == engaged
    assert broken.calls == 1


async def test_refresh_samples_early_when_the_intake_may_cross_its_bound(h: Harness) -> None:
    """Between two periodic samples, alerts handed to the intake that could cross the bound
    trigger a sample at once (a Kafka pause overshoots by one batch at most)."""
    config = BackpressureConfig(max_intake_pending=2, check_interval_s=3600)
    pressure = Backpressure(h.store, config, clock=h.clock)
    assert await pressure.refresh() is None  # first call: never sampled
    await h.store.append_intake([IntakeRecord(
        source="kafka", received_at=h.clock.now(),
        alert=make_alert(f"Burst{i}", starts_at=h.clock.now()), meta={}) for i in range(3)])
    assert await pressure.refresh() is None  # not stale, nothing noted: the cached decision
    pressure.note_intake(3)
    assert await pressure.refresh() == Bound("intake", 3, 2)
