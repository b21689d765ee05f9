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
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from router.acks.links import AckLinks
from router.incidents.flush import FlushResult, FlushRules, plan_flush, recipient_audiences
from router.incidents.state import Incident, IncidentAlert, RecipientLog

__all__ = ["DEFAULT_OFFLOAD_RENDERS", "estimated_renders", "plan_flush_off_loop",
           "set_offload_renders"]

#: The default of ``templates.offload_renders``.
DEFAULT_OFFLOAD_RENDERS: Final = 32
_WORKERS: Final = 2

_threshold = DEFAULT_OFFLOAD_RENDERS
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def set_offload_renders(threshold: int) -> None:
    """Set ``templates.offload_renders`` (0: every flush renders in the pool)."""
    global _threshold
    if threshold < 0:
        raise ValueError("templates.offload_renders must be >= 0")
    _threshold = threshold


def estimated_renders(incident: Incident, logs: Mapping[tuple[str, str], RecipientLog],
                      rules: FlushRules) -> int:
    """An upper estimate of the messages a flush of ``incident`` renders: its recipients
    (the audiences' contacts and anyone told before) times its channels."""
    decision = incident.decision
    recipients = {(name, contact.id) for name in recipient_audiences(incident)
                  if (found := rules.audiences.get(name)) is not None
                  for contact in found.contacts}
    recipients.update(logs)
    channels = max(1, len(decision.channels)) * (2 if decision.fallback else 1)
    return len(recipients) * channels


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
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(max_workers=_WORKERS,
                                                      thread_name_prefix="tocsin-render")
    return await asyncio.get_running_loop().run_in_executor(
        _pool, lambda: plan_flush(incident, alerts, logs, inhibited, rules, now,
                                  storm_recent=storm_recent, ack_links=ack_links))
