"""The deduplication decision: should this recipient be told about this incident now?

A pure function of what was last notified for the incident and recipient (the
:class:`NotifiedEntry`, Alertmanager's notification-log entry), the current firing and
resolved alert sets, the repeat interval and now — Alertmanager's ``DedupStage``
``needsUpdate``, with the reason spelled out so the timeline can say why:

- never notified: notify when something fires (``first``);
- a firing alert the recipient was not told about: ``new_firing``;
- nothing fires any more: notify (``all_resolved``) only if the recipient was told that
  something fired — alerts that fired and resolved between two notices are not news;
- resolved alerts the recipient was not told about: ``new_resolved``;
- otherwise only when ``repeat_interval`` passed since the last notice (``repeat``).

Identical alert state received again (an HA pair, a retried webhook, a redelivery)
yields the same sets, hence ``None``: no second notification within the repeat interval.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["NotifiedEntry", "Reason", "needs_notice"]

Reason = Literal["first", "new_firing", "all_resolved", "new_resolved", "repeat"]


@dataclass(frozen=True, slots=True)
class NotifiedEntry:
    """What the recipient was last told: alert fingerprints and when."""

    firing: frozenset[str]
    resolved: frozenset[str]
    notified_at: datetime


def needs_notice(
    entry: NotifiedEntry | None,
    firing: Set[str],
    resolved: Set[str],
    repeat_interval_s: float,
    now: datetime,
    *,
    send_resolved: bool = True,
) -> Reason | None:
    """Why a notice is due now, or None when the recipient already knows everything."""
    if entry is None:
        return "first" if firing else None
    if not entry.firing >= firing:
        return "new_firing"
    if not firing:
        return "all_resolved" if entry.firing else None
    if send_resolved and not entry.resolved >= resolved:
        return "new_resolved"
    if entry.notified_at < now - timedelta(seconds=repeat_interval_s):
        return "repeat"
    return None
