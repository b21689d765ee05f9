"""Group commit pulled by the writer: many awaiting callers, one job per transaction.

The writer thread already commits every job waiting in its queue in one transaction.
For the hottest path (webhook intake, one small request per alert) what is left is per
caller: a thread-safe future, a wake-up of the event loop per result, and a Python loop
over single-row INSERTs holding the GIL in the writer thread. :class:`WriterBatcher`
removes those. Callers append their items to a list and await a plain asyncio future.
At most one writer job waits in the writer's queue for them; it takes the items when the
writer thread *starts* it, not when it was queued, so one transaction holds everything
that arrived while the previous transaction was committing: the batch size follows the
load (no timer, no added latency when idle, and no batch of one request queued behind a
full one). The results of a batch reach the event loop with ONE thread-safe call, which
resolves every caller's future after the COMMIT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from router.errors import StoreClosedError
from router.store.sqlite.writer import SqliteWriter

__all__ = ["WriterBatcher"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

_Entry = tuple[Sequence[ItemT], asyncio.Future[list[ResultT]]]


class WriterBatcher(Generic[ItemT, ResultT]):
    """Coalesce concurrent ``submit`` calls into single ``write`` calls in the writer thread.

    ``write(conn, items)`` runs inside the writer's transaction and must return one result
    per item, in order; like every writer job it must be re-runnable (the writer re-runs
    the jobs of a failed transaction one by one). If it raises, every caller of that batch
    gets the exception (nothing of the batch was committed). ``on_committed(items,
    results)``, when given, runs on the event loop after the COMMIT, before the callers
    resume. At most ``max_items`` items go into one transaction.
    """

    def __init__(
        self,
        writer: SqliteWriter,
        write: Callable[[sqlite3.Connection, list[ItemT]], Sequence[ResultT]],
        *,
        on_committed: Callable[[list[ItemT], Sequence[ResultT]], None] | None = None,
        max_items: int = 5000,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self._writer = writer
        self._write = write
        self._on_committed = on_committed
        self._max_items = max_items
        self._lock = threading.Lock()  # the writer thread takes what the loop appends
        self._pending: deque[_Entry[ItemT, ResultT]] = deque()
        self._armed = False  # a job is queued and has not taken its items yet
        self._in_flight = 0  # jobs queued whose results were not delivered yet
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, items: Sequence[ItemT]) -> list[ResultT]:
        """Queue ``items`` for the next transaction; return their results once committed."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[ResultT]] = loop.create_future()
        with self._lock:
            self._pending.append((items, future))
            arm = not self._armed
            self._armed = True
        if arm:
            self._schedule(loop)
        return await future

    async def drain(self) -> None:
        """Wait until everything submitted so far has been committed (or failed)."""
        while not self._idle.is_set():
            await self._idle.wait()

    # -- internals --------------------------------------------------------------------

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        job = _PullJob(self)
        try:
            future = self._writer.submit_nowait(job)
        except StoreClosedError as exc:  # the store is closed: nobody will take the items
            with self._lock:
                self._armed = False
            self._fail(self._take_all(), exc)
            return
        self._in_flight += 1
        self._idle.clear()

        def done(finished: concurrent.futures.Future[Sequence[ResultT]]) -> None:
            # Writer thread: one wake-up of the event loop per batch.
            loop.call_soon_threadsafe(self._deliver, job, finished)

        future.add_done_callback(done)

    def _take(self) -> list[_Entry[ItemT, ResultT]]:
        """Writer thread, at the start of the job: up to ``max_items``, oldest first."""
        taken: list[_Entry[ItemT, ResultT]] = []
        count = 0
        with self._lock:
            pending = self._pending
            while pending and (not taken or count + len(pending[0][0]) <= self._max_items):
                entry = pending.popleft()
                taken.append(entry)
                count += len(entry[0])
            self._armed = False  # what arrives from now on needs (and gets) a new job
        return taken

    def _take_all(self) -> list[_Entry[ItemT, ResultT]]:
        with self._lock:
            taken = list(self._pending)
            self._pending.clear()
        return taken

    def _deliver(
        self, job: _PullJob[ItemT, ResultT], finished: concurrent.futures.Future[Sequence[ResultT]]
    ) -> None:
        """Event loop: hand the batch's results (or its error) to its callers."""
        self._in_flight -= 1
        taken = job.taken
        error = finished.exception()
        if taken is None:  # never started (the writer stopped): fail what it would have taken
            with self._lock:
                self._armed = False
            self._fail(self._take_all(), error or StoreClosedError("store is closed"))
        elif error is not None:
            self._fail(taken, error)
        else:
            results = finished.result()
            if self._on_committed is not None:
                self._on_committed(job.items, results)
            start = 0
            for chunk, future in taken:
                end = start + len(chunk)
                if not future.done():  # a caller may have been cancelled meanwhile
                    future.set_result(list(results[start:end]))
                start = end
        with self._lock:  # a batch left over by max_items has no job yet
            rearm = bool(self._pending) and not self._armed
            self._armed = self._armed or rearm
        if rearm:
            self._schedule(asyncio.get_running_loop())
        if self._in_flight == 0 and not self._pending:
            self._idle.set()

    @staticmethod
    def _fail(taken: list[_Entry[ItemT, ResultT]], error: BaseException) -> None:
        for _, future in taken:
            if not future.done():
                future.set_exception(error)


class _PullJob(Generic[ItemT, ResultT]):
    """The writer job of one batch: takes the pending items the first time it runs."""

    __slots__ = ("_batcher", "items", "taken")

    def __init__(self, batcher: WriterBatcher[ItemT, ResultT]) -> None:
        self._batcher = batcher
        self.taken: list[_Entry[ItemT, ResultT]] | None = None
        self.items: list[ItemT] = []

    def __call__(self, conn: sqlite3.Connection) -> Sequence[ResultT]:
        if self.taken is None:  # a re-run (failed transaction) keeps the same items
            self.taken = self._batcher._take()
            self.items = [item for chunk, _ in self.taken for item in chunk]
        if not self.items:
            return []
        return self._batcher._write(conn, self.items)
