"""AsyncBatcher coalesces concurrent submits into one flush and routes results back."""

from __future__ import annotations

import asyncio

import pytest

from router.store.batcher import AsyncBatcher


async def test_concurrent_submits_share_one_flush() -> None:
    """Callers that arrive while a flush runs are served together by the next one."""
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            await gate.wait()
        return [i * 10 for i in items]

    batcher: AsyncBatcher[int, int] = AsyncBatcher(flush)
    first = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit([n, n + 1])) for n in (2, 4, 6)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == [10]
    assert [await r for r in rest] == [[20, 30], [40, 50], [60, 70]]
    assert calls == [[1], [2, 3, 4, 5, 6, 7]]


async def test_a_failed_flush_fails_every_caller_of_that_batch_only() -> None:
    """An error reaches the callers whose items were in the failing flush, not later ones."""
    attempts = 0

    async def flush(items: list[str]) -> list[str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("disk full")
        return items

    batcher: AsyncBatcher[str, str] = AsyncBatcher(flush)
    with pytest.raises(RuntimeError, match="disk full"):
        await batcher.submit(["a"])
    assert await batcher.submit(["b"]) == ["b"]


async def test_max_items_bounds_a_flush() -> None:
    """No flush receives more than max_items items (a single larger submit aside)."""
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0)
        return items

    batcher: AsyncBatcher[int, int] = AsyncBatcher(flush, max_items=4)
    await asyncio.gather(*(batcher.submit([i]) for i in range(10)))
    assert max(sizes) <= 4 and sum(sizes) == 10


async def test_empty_submit_does_not_flush() -> None:
    """Submitting nothing returns at once without calling flush."""

    async def flush(items: list[int]) -> list[int]:
        raise AssertionError("flush called")

    assert await AsyncBatcher(flush).submit([]) == []


async def test_two_flushes_in_flight_keep_every_caller_result() -> None:
    """With max_in_flight=2 a new batch is flushed while the first one is still running."""
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            await gate.wait()
        return [i * 10 for i in items]

    batcher: AsyncBatcher[int, int] = AsyncBatcher(flush, max_in_flight=2)
    first = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(batcher.submit([2, 3]))
    assert await second == [20, 30]  # not held behind the first flush
    assert not first.done()
    gate.set()
    assert await first == [10]
    await batcher.drain()
    assert calls == [[1], [2, 3]]


async def test_submits_after_flushers_finished_are_still_flushed() -> None:
    """An item submitted right after every flusher ended starts a new one (never stranded)."""

    async def flush(items: list[int]) -> list[int]:
        return items

    batcher: AsyncBatcher[int, int] = AsyncBatcher(flush, max_in_flight=2)
    for round_ in range(5):
        results = await asyncio.gather(*(batcher.submit([round_, i]) for i in range(3)))
        assert results == [[round_, i] for i in range(3)]
