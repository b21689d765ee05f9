"""Group commit on the event loop's side: many awaiting callers, one writer job.

The writer thread already commits every job waiting in its queue in one transaction.
For the hottest path (webhook intake, one small request per alert) the cost that is left
is per caller: a thread-safe future, a wake-up of the event loop per result, and a Python
loop over single-row INSERTs holding the GIL in the writer thread. :class:`AsyncBatcher`
removes those: callers append their items to a list on the event loop and await a plain
asyncio future; one flusher task hands the whole list to the writer as ONE job
(``executemany``), and resolves every caller's future on the loop when it returns.
Whatever arrives while a flush is in progress forms the next batch, so the batch size
adapts to the load with no timer and no added latency when idle. With
``max_in_flight=2`` the next batch is handed to the writer while the previous one
commits, so the writer never waits for the event loop between two transactions (its
queue keeps jobs in order; each batch still gets its results only after its COMMIT).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["AsyncBatcher"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class AsyncBatcher(Generic[ItemT, ResultT]):
    """Coalesce concurrent ``submit`` calls into single calls of ``flush``.

    ``flush(items)`` must return one result per item, in order. If it raises, every caller
    of that batch gets the exception (nothing of the batch was committed: the writer rolls
    the transaction back).
    """

    def __init__(
        self,
        flush: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        max_items: int = 5000,
        max_in_flight: int = 1,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self._flush = flush
        self._max_items = max_items
        self._max_in_flight = max_in_flight
        self._pending: deque[tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[ItemT]) -> list[ResultT]:
        """Queue ``items`` for the next flush; return their results once committed."""
        if not items:
            return []
        future: asyncio.Future[list[ResultT]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        # A finished task may still be in the set until its done callback ran: count
        # only live flushers, or an item could be left with nobody to flush it.
        if sum(not task.done() for task in self._tasks) < self._max_in_flight:
            task = asyncio.get_running_loop().create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed."""
        while live := [task for task in self._tasks if not task.done()]:
            await asyncio.wait(live)  # unlike gather, never cancels the flushers

    async def _run(self) -> None:
        while self._pending:
            batch = self._take()
            items = [item for chunk, _ in batch for item in chunk]
            try:
                results = await self._flush(items)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for chunk, future in batch:
                end = start + len(chunk)
                if not future.done():  # a caller may have been cancelled meanwhile
                    future.set_result(list(results[start:end]))
                start = end

    def _take(self) -> list[tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]]:
        taken: list[tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]] = []
        count = 0
        while self._pending and (not taken or count + len(self._pending[0][0]) <= self._max_items):
            entry = self._pending.popleft()
            taken.append(entry)
            count += len(entry[0])
        return taken
