"""Large flushes render off the event loop.

:func:`router.incidents.flush.plan_flush` is pure and synchronous, and renders one
message per (recipient, channel). An incident whose audiences hold hundreds of contacts
renders hundreds of templates, each allowed up to its render budget
(``templates.render_budget_s``): run on the event loop, that would stall the webhook,
the dispatcher and the probes meanwhile. :func:`plan_flush_off_loop` estimates the
renders a flush makes and, above ``templates.offload_renders``, runs it in a small
dedicated thread pool (two threads: renders are CPU work, more threads would only
contend for the interpreter); below, it runs inline (a thread hop costs more than a
handful of renders). The render budgets are per thread (router/rules/templates.py), so
they hold in the pool too. Everything a flush reads is immutable (the snapshot, the rule
set), so running it in a thread shares nothing mutable with the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Final

from router.acks.links import AckLinks
from router.incidents.flush import FlushResult, FlushRules, plan_flush, recipient_audiences
from router.incidents.state import Incident, IncidentAlert, RecipientLog

__all__ = ["DEFAULT_OFFLOAD_RENDERS", "LARGE_FLUSH_RENDERS", "collector_paused",
           "estimated_renders", "plan_flush_off_loop", "release_off_loop",
           "set_offload_renders"]

#: A flush at least this large runs with the cyclic garbage collector paused.
LARGE_FLUSH_RENDERS: Final = 5_000

#: The default of ``templates.offload_renders``.
DEFAULT_OFFLOAD_RENDERS: Final = 32
_WORKERS: Final = 2

_threshold = DEFAULT_OFFLOAD_RENDERS
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_paused = 0  # flushes running with the collector paused (on the event loop's thread)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large flush runs (plan, commit, and
    the result dropped).

    A 100,000-recipient flush allocates a few hundred thousand tracked objects that
    live until it is committed; the young-generation collections they trigger walk them
    all, holding the interpreter (and so the event loop) 50–150 ms each on this machine
    class. The objects die by reference counting once the flush is done: collecting
    them meanwhile finds nothing. Nested and concurrent flushes share one pause (a
    counter, only touched from the event loop); the collector is enabled again when the
    last ends, as it was before if it was disabled by someone else.
    """
    global _paused
    was_enabled = gc.isenabled()
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0 and was_enabled:
            gc.enable()


def set_offload_renders(threshold: int) -> None:
    """Set ``templates.offload_renders`` (0: every flush renders in the pool)."""
    global _threshold
    if threshold < 0:
        raise ValueError("templates.offload_renders must be >= 0")
    _threshold = threshold


def estimated_renders(incident: Incident, logs: Mapping[tuple[str, str], RecipientLog],
                      rules: FlushRules) -> int:
    """An estimate of the messages a flush of ``incident`` renders: its recipients (the
    audiences' sizes, plus those told before from audiences it no longer notifies; a
    contact in two audiences counts twice: this runs on the event loop, so no set of
    100,000 ids is built) times its channels."""
    decision = incident.decision
    names = recipient_audiences(incident)
    recipients = sum(len(found.contacts) for name in names
                     if (found := rules.audiences.get(name)) is not None)
    recipients += sum(1 for audience, _ in logs if audience not in names)
    channels = max(1, len(decision.channels)) * (2 if decision.fallback else 1)
    return recipients * channels


async def release_off_loop(*objects: object) -> None:
    """Let the render pool drop the last references to ``objects`` (a large flush's
    snapshot and result), and wait until it did: freeing a few hundred thousand objects
    takes 100 ms of the interpreter, better spent in a thread that yields it every few
    milliseconds than on the event loop. The caller must hold no other reference (pass
    them, then delete its own names before awaiting)."""
    box = list(objects)
    del objects
    await asyncio.get_running_loop().run_in_executor(_executor(), box.clear)


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=_WORKERS,
                                                      thread_name_prefix="tocsin-render")
    return _pool


async def plan_flush_off_loop(
    incident: Incident,
    alerts: Sequence[IncidentAlert],
    logs: Mapping[tuple[str, str], RecipientLog],
    inhibited: Mapping[str, bool],
    rules: FlushRules,
    now: datetime,
    *,
    storm_recent: Mapping[str, int] | None = None,
    ack_links: AckLinks | None = None,
) -> FlushResult:
    """:func:`plan_flush`, in the render pool when it renders many messages."""
    if estimated_renders(incident, logs, rules) <= _threshold:
        return plan_flush(incident, alerts, logs, inhibited, rules, now,
                          storm_recent=storm_recent, ack_links=ack_links)
    # The result comes back in a box, not as the futures' value: asyncio's future and
    # the pool's reference each other (a cycle), so a result they held would live until
    # a collection walks its hundred thousand objects (on the loop's thread).
    box: list[FlushResult] = []

    def run() -> None:
        box.append(plan_flush(incident, alerts, logs, inhibited, rules, now,
                              storm_recent=storm_recent, ack_links=ack_links))

    await asyncio.get_running_loop().run_in_executor(_executor(), run)
    return box.pop()
