"""The one loop every background worker runs on, and the supervision of its task.

A :class:`Loop` runs passes until :meth:`Loop.stop`:

- a pass (:meth:`Loop.one_pass`) does one unit of work and says how long to wait before
  the next one: ``0`` (more work is ready: go on at once), a number of seconds (the next
  timer), or ``None`` (the worker's poll interval);
- between two passes the loop sleeps until that time, or until :meth:`Loop.wake` (new
  work was committed), or until :meth:`Loop.stop`;
- a pass that raises is isolated: one log line with the traceback (the worker's
  ``failure_event``), then a back-off that doubles from ``error_backoff_s`` up to
  ``max_backoff_s`` and is not cut short by :meth:`Loop.wake`, so a failing store is
  never retried in a hot loop; the next successful pass resets it;
- :meth:`Loop.stop` lets the pass in progress finish (a worker checks
  :attr:`Loop.stopping` between the items of a long pass), runs :meth:`Loop.on_stop`
  (drain, settle) and returns once the loop has ended.

:class:`Supervised` runs a worker (a :class:`Loop`, or anything with ``run`` and
``stop``) as an asyncio task for the composition root (:mod:`router.app`): a worker that
crashes or returns on its own calls ``on_exit`` (the service stops with exit status 1),
and :meth:`Supervised.stop` bounds the wait for a graceful stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from router.logging import get_logger

__all__ = ["DEFAULT_MAX_BACKOFF_S", "Loop", "Supervised", "Worker"]

#: The longest wait after a series of failed passes.
DEFAULT_MAX_BACKOFF_S: Final = 60.0

_log = get_logger("router.workers.loop")


class Loop:
    """One background worker: passes separated by waits, until :meth:`stop`.

    Subclasses set :attr:`name` (and :attr:`failure_event`, the log event of a failed
    pass) and implement :meth:`one_pass`; :meth:`on_start` and :meth:`on_stop` are
    optional hooks run once around the passes.
    """

    #: The worker's name (task names, log fields).
    name: str = "worker"
    #: The log event of a pass that raised (default ``<name>.pass_failed``).
    failure_event: str | None = None

    def __init__(self, *, poll_interval_s: float | None, error_backoff_s: float | None = None,
                 max_backoff_s: float = DEFAULT_MAX_BACKOFF_S) -> None:
        """``poll_interval_s``: the wait when a pass names none (``None``: until woken or
        stopped). ``error_backoff_s``: the first wait after a failed pass (default the
        poll interval, at least 0.1 s), doubling up to ``max_backoff_s``."""
        self._poll_interval_s = poll_interval_s
        first = error_backoff_s if error_backoff_s is not None else (poll_interval_s or 1.0)
        self._error_backoff_s = max(0.1, first)
        self._max_backoff_s = max(self._error_backoff_s, max_backoff_s)
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()
        self._failures = 0

    # -- what a worker implements ------------------------------------------------------

    async def one_pass(self) -> float | None:
        """Do one unit of work; return the wait before the next (see the module doc)."""
        raise NotImplementedError

    async def on_start(self) -> None:
        """Run once before the first pass."""

    async def on_stop(self) -> None:
        """Run once after the last pass (also when the loop was cancelled)."""

    # -- control -----------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: a long pass ends early on it."""
        return self._stopping

    @property
    def running(self) -> bool:
        """True while :meth:`run` is looping (or finishing its last pass)."""
        return self._running

    @property
    def failures(self) -> int:
        """Passes failed in a row (0 after a successful pass)."""
        return self._failures

    def wake(self) -> None:
        """New work was committed: run the next pass now rather than after the wait."""
        self._wake.set()

    async def run(self) -> None:
        """Run passes until :meth:`stop`."""
        self._running = True
        self._stopped.clear()
        try:
            await self.on_start()
            while not self._stopping:
                try:
                    wait = await self.one_pass()
                except Exception:  # noqa: BLE001 - isolated: logged once, then back-off
                    self._failures += 1
                    backoff = min(self._max_backoff_s,
                                  self._error_backoff_s * 2.0 ** min(self._failures - 1, 30))
                    _log.exception(self.failure_event or f"{self.name}.pass_failed",
                                   worker=self.name, failures=self._failures,
                                   retry_in_s=round(backoff, 3))
                    if not self._stopping:
                        await self._sleep(backoff, wakeable=False)
                    continue
                self._failures = 0
                if self._stopping:
                    break
                if wait is None:
                    wait = self._poll_interval_s
                if wait is None or wait > 0:
                    await self._sleep(wait, wakeable=True)
        finally:
            try:
                await self.on_stop()
            finally:
                self._running = False
                self._stopped.set()

    async def stop(self) -> None:
        """Let the pass in progress finish, run :meth:`on_stop`, and return."""
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def _sleep(self, timeout_s: float | None, *, wakeable: bool) -> None:
        """Wait ``timeout_s`` (None: no bound), until woken (when ``wakeable``) or stopped."""
        event = self._wake if wakeable else self._stop_requested
        try:
            await asyncio.wait_for(event.wait(), timeout=timeout_s)
        except TimeoutError:
            pass
        if wakeable:
            self._wake.clear()


class Worker(Protocol):
    """What :class:`Supervised` runs: a loop with ``run`` and a graceful ``stop``."""

    async def run(self) -> None:
        """Work until stopped."""
        ...

    async def stop(self) -> None:
        """Ask :meth:`run` to end after its current work."""
        ...


class Supervised:
    """A worker running as a task; its unexpected end (crash or early return) calls
    ``on_exit(1)``."""

    def __init__(self, worker: Worker, name: str, *, on_exit: Callable[[int], None],
                 stop_timeout_s: float) -> None:
        self.name = name
        self._worker = worker
        self._on_exit = on_exit
        self._stop_timeout_s = stop_timeout_s
        self._stopping = False
        self.task: asyncio.Task[None] = asyncio.create_task(worker.run(), name=f"tocsin-{name}")
        self.task.add_done_callback(self._done)

    def _done(self, finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        error = finished.exception()
        if error is not None:
            _log.error("background worker crashed", worker=self.name, error=repr(error))
            self._on_exit(1)
        elif not self._stopping:
            _log.error("background worker exited unexpectedly", worker=self.name)
            self._on_exit(1)

    async def stop(self) -> None:
        """Call the worker's own ``stop()`` and wait for its task, bounded."""
        self._stopping = True
        try:
            async with asyncio.timeout(self._stop_timeout_s):
                await self._worker.stop()
                await asyncio.shield(self.task)
        except TimeoutError:
            _log.warning("worker did not stop in time; cancelling", worker=self.name)
            self.task.cancel()
        except asyncio.CancelledError:
            self.task.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 — already logged by the done callback
            _log.debug("worker ended with an error", worker=self.name, error=repr(exc))
