"""The one worker loop: waits, wake-ups, error isolation with back-off, graceful stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from router.workers.loop import Loop, Supervised


class _Counting(Loop):
    """A loop whose passes are recorded, and that raises while ``failing`` is set."""

    name = "counting"
    failure_event = "counting.failed"

    def __init__(self, *, poll_interval_s: float | None, failing: int = 0,
                 error_backoff_s: float | None = None, max_backoff_s: float = 60.0) -> None:
        super().__init__(poll_interval_s=poll_interval_s, error_backoff_s=error_backoff_s,
                         max_backoff_s=max_backoff_s)
        self.passes: list[float] = []
        self.failing = failing
        self.release: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.stopped_hook = False

    async def one_pass(self) -> float | None:
        self.passes.append(time.monotonic())
        self.started.set()
        if self.release is not None:
            await self.release.wait()
        if self.failing:
            self.failing -= 1
            raise RuntimeError("store unavailable")
        return None

    async def on_stop(self) -> None:
        self.stopped_hook = True


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):  # up to ~10 s on a loaded machine
        if condition():
            return
        await asyncio.sleep(0.005)
    pytest.fail("condition not reached")


async def test_wake_runs_the_next_pass_at_once() -> None:
    """Without a poll interval the loop waits until woken; wake() runs one more pass."""
    loop = _Counting(poll_interval_s=None)
    task = asyncio.create_task(loop.run())
    await _until(lambda: len(loop.passes) == 1)
    loop.wake()
    await _until(lambda: len(loop.passes) == 2)
    await loop.stop()
    await asyncio.wait_for(task, 5)
    assert len(loop.passes) == 2 and loop.stopped_hook


async def test_failed_passes_are_logged_and_backed_off() -> None:
    """A raising pass is logged once with its count and the loop backs off, doubling the
    wait (no hot loop), wake() does not cut a back-off short, and a good pass resets it."""
    loop = _Counting(poll_interval_s=None, failing=3, error_backoff_s=0.1, max_backoff_s=0.2)
    with capture_logs() as logs:
        task = asyncio.create_task(loop.run())
        await _until(lambda: len(loop.passes) == 1)
        loop.wake()  # ignored while backing off
        await _until(lambda: len(loop.passes) >= 4)  # + one for the remembered wake
        await loop.stop()
        await asyncio.wait_for(task, 5)
    gaps = [b - a for a, b in zip(loop.passes, loop.passes[1:], strict=False)]
    assert gaps[0] >= 0.095 and gaps[1] >= 0.19 and gaps[2] >= 0.19  # 0.1, 0.2, capped
    failed = [e for e in logs if e["event"] == "counting.failed"]
    assert [e["failures"] for e in failed] == [1, 2, 3]
    assert all(e["worker"] == "counting" and e["exc_info"] for e in failed)
    assert loop.failures == 0  # the fourth pass succeeded


async def test_stop_finishes_the_current_pass() -> None:
    """stop() lets the pass in progress end, runs on_stop, then returns; no new pass."""
    loop = _Counting(poll_interval_s=0.01)
    loop.release = asyncio.Event()
    task = asyncio.create_task(loop.run())
    await loop.started.wait()
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)
    assert not stopping.done() and loop.stopping and not loop.stopped_hook
    loop.release.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(task, 5)
    assert len(loop.passes) == 1 and loop.stopped_hook and not loop.running


async def test_stop_interrupts_a_back_off() -> None:
    """A loop backing off after a failure stops at once when asked to."""
    loop = _Counting(poll_interval_s=None, failing=1, error_backoff_s=3600)
    task = asyncio.create_task(loop.run())
    await _until(lambda: loop.failures == 1)
    await asyncio.wait_for(loop.stop(), 5)
    await asyncio.wait_for(task, 5)
    assert len(loop.passes) == 1


class _Returns:
    async def run(self) -> None:
        return

    async def stop(self) -> None:
        return


@pytest.mark.parametrize("stop_first", [False, True])
async def test_supervised_reports_an_unexpected_end(stop_first: bool) -> None:
    """A supervised worker that returns on its own reports exit status 1; one that was
    asked to stop does not."""
    exits: list[int] = []
    supervised = Supervised(_Returns(), "returns", on_exit=exits.append, stop_timeout_s=5)
    if stop_first:
        await supervised.stop()
    else:
        await asyncio.wait_for(asyncio.shield(supervised.task), 5)
    await asyncio.sleep(0)  # the done callback runs after the task's waiters
    assert exits == ([] if stop_first else [1])
