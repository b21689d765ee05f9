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
