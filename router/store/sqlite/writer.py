"""One dedicated writer thread per SQLite database, with group commit.

Async callers hand a function ``fn(connection) -> result`` to :meth:`SqliteWriter.submit`
and await its result. The thread takes every job waiting in its queue (up to
``max_batch``), runs them all inside ONE transaction and commits once: under load, N
concurrent writers cost one fsync, not N. The result of a job is delivered only after
the COMMIT that contains it returned, so "awaited" means "durable".

If a job raises, the batch is rolled back and every job of it is re-run alone, so one
bad job fails only its own caller. Jobs must therefore be re-runnable (they are plain
SQL on the connection, with no side effects outside it).

The driver's errors do not leave the store: what the database cannot do now (an
``sqlite3.OperationalError`` such as a full disk or a lock held too long, or a damaged
file) reaches the caller as :class:`~router.errors.StoreUnavailable`, the driver's error
as its ``__cause__`` (:func:`store_error`, also applied to the store's reads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from router.errors import StoreClosedError, StoreUnavailable

__all__ = ["SqliteWriter", "store_error"]

T = TypeVar("T")

_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: concurrent.futures.Future[Any]


_STOP = object()


def store_error(exc: BaseException) -> BaseException:
    """What the store's caller gets for ``exc``, raised by a job or a read.

    ``sqlite3.OperationalError`` (disk, lock, I/O) and a bare ``sqlite3.DatabaseError`` (a
    damaged or foreign file) become :class:`~router.errors.StoreUnavailable` with ``exc``
    as ``__cause__``; anything else (an ``IntegrityError`` or ``ProgrammingError`` is a
    bug in a job) is returned as it is.
    """
    if isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError:
        failure = StoreUnavailable(str(exc))
        failure.__cause__ = exc
        return failure
    return exc


class SqliteWriter:
    """Owns the only writing connection of a database and its thread."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        on_open: Callable[[sqlite3.Connection], object] | None = None,
        max_batch: int = 1000,
        name: str = "tocsin-store-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._connect = connect
        self._on_open = on_open
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._closed = False
        self.commits = 0  # write transactions committed (group commit is visible here)
        self.jobs = 0  # jobs that completed successfully

    async def start(self) -> None:
        """Start the thread, open the connection, run ``on_open`` (migrations)."""
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the writer thread, inside a group-committed transaction."""
        return await asyncio.wrap_future(self.submit_nowait(fn))

    def submit_nowait(self, fn: Callable[[sqlite3.Connection], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn`` like :meth:`submit`; its future resolves after the COMMIT.

        For callers that collect results themselves (:class:`~router.store.sqlite.batcher.
        WriterBatcher`): no asyncio future, no event-loop wake-up per job. The future's
        callbacks run in the writer thread. Raises StoreClosedError when the store is closed.
        """
        if self._closed:
            raise StoreClosedError("store is closed")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Job(fn, future))
        return future

    async def close(self) -> None:
        """Finish every job already queued, then close the connection and the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join)

    # -- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
            if self._on_open is not None:
                self._on_open(conn)
        except BaseException as exc:  # noqa: BLE001 - reported to start() and re-raised there
            self._ready.set_exception(store_error(exc))
            return
        self._ready.set_result(None)
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                batch: list[_Job] = []
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    assert isinstance(item, _Job)
                    if item.future.set_running_or_notify_cancel():
                        batch.append(item)
                    if len(batch) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    try:
                        self._run_batch(conn, batch)
                    except Exception as exc:  # noqa: BLE001 - e.g. ROLLBACK failed: fail the batch
                        _log.exception("store.batch_crashed", jobs=len(batch))
                        for job in batch:
                            if not job.future.done():
                                job.future.set_exception(store_error(exc))
                # Drop the jobs now, not when the next one arrives: a job holds what it
                # wrote (a fan-out's 100,000 rows) until then.
                del batch, item
        finally:
            self._closed = True
            conn.close()
            self._fail_queued()

    def _fail_queued(self) -> None:
        """Fail whatever was queued after the thread stopped (no caller waits forever)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Job) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(StoreClosedError("store is closed"))

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [job.fn(conn) for job in batch]
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - the error goes to the job's caller
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                batch[0].future.set_exception(store_error(exc))
                return
            _log.debug("store.batch_isolated", jobs=len(batch), error=str(exc))
            for job in batch:
                self._run_batch(conn, [job])
            return
        self.commits += 1
        self.jobs += len(batch)
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)
