"""Flushes that render many messages render in the render threads, not on the event loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import router.flush_offload as offload
from router.flush_offload import (
    DEFAULT_OFFLOAD_RENDERS,
    estimated_renders,
    set_offload_renders,
)
from router.incidents.flush import FlushResult, plan_flush
from tests.incidents.harness import Harness, make_alert


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of the thread each flush was planned in (the real plan_flush runs)."""
    seen: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> FlushResult:
        seen.append(threading.current_thread().name)
        return plan_flush(*args, **kwargs)

    monkeypatch.setattr(offload, "plan_flush", spy)
    yield seen
    set_offload_renders(DEFAULT_OFFLOAD_RENDERS)


async def test_a_large_fan_out_is_planned_in_a_render_thread(
    h: Harness, threads: list[str]
) -> None:
    """Above templates.offload_renders the flush runs in a tocsin-render thread, and
    plans the same deliveries."""
    set_offload_renders(0)
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    h.clock.advance(30)
    assert await h.scheduler.flush_due() == 1
    assert len(threads) == 1 and threads[0].startswith("tocsin-render")
    assert sorted(d.contact_id for d in await h.deliveries()) == ["alice", "bob"]


async def test_a_small_flush_stays_on_the_loop(h: Harness, threads: list[str]) -> None:
    """Two renders are below the default threshold: no thread hop."""
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    h.clock.advance(30)
    assert await h.scheduler.flush_due() == 1
    assert threads == [threading.current_thread().name]
    [incident] = await h.store.list_incidents()
    snapshot = await h.store.load_incident(incident.id, h.clock.now(), lambda _: [], None)
    assert snapshot is not None
    assert estimated_renders(snapshot.incident, snapshot.logs, h.rules) == 2


async def test_a_large_flush_runs_without_collections_and_frees_its_result_off_the_loop(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush of at least LARGE_FLUSH_RENDERS messages pauses the cyclic collector
    until its result was dropped (in the render pool), then enables it again."""
    import gc

    from router.workers import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "LARGE_FLUSH_RENDERS", 2)
    during: list[bool] = []
    released: list[str] = []
    real_plan, real_release = plan_flush, offload.release_off_loop

    def spy(*args: Any, **kwargs: Any) -> FlushResult:
        during.append(gc.isenabled())
        return real_plan(*args, **kwargs)

    async def release(*objects: object) -> None:
        released.extend(type(o).__name__ for o in objects)
        await real_release(*objects)

    monkeypatch.setattr(offload, "plan_flush", spy)
    monkeypatch.setattr(scheduler_module, "release_off_loop", release)
    assert gc.isenabled()
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    h.clock.advance(30)
    assert await h.scheduler.flush_due() == 1
    assert during == [False]
    assert released == ["FlushResult", "IncidentSnapshot"]
    assert gc.isenabled()
    assert sorted(d.contact_id for d in await h.deliveries()) == ["alice", "bob"]


def test_the_collector_pause_nests_and_keeps_a_disabled_collector_disabled() -> None:
    import gc

    with offload.collector_paused():
        with offload.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with offload.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
