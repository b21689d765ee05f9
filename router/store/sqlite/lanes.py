"""Per-channel claims of due deliveries: every channel is a lane with its own slots.

A claim takes at most ``slots`` due pending deliveries *of each channel*, so one
channel's backlog never uses up another's claim; within a channel it takes the most
severe first (critical, then warning, then info; any other severity ranks with
warning), then the oldest due. :class:`LaneSlots` is what the dispatcher reserves and
what a claim (the dispatcher's own, or a flush's) consumes; :func:`claim_sql` builds the
one ``UPDATE ... RETURNING`` statement that leases them, in one transaction. A
later notice waits while the first notice of the same incident to the same contact on
the same channel is pending: for one recipient, the phases go out in order.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from router.store.base import LaneSlots

__all__ = ["SEVERITY_RANK_SQL", "LaneSlots", "claim_sql", "severity_rank"]

#: Claim order within a lane; the same expression is indexed (migration 0007).
SEVERITY_RANK_SQL = ("(CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1"
                     " WHEN 'info' THEN 2 ELSE 1 END)")
_RANKS = {"critical": 0, "warning": 1, "info": 2}


def severity_rank(severity: str) -> int:
    """Claim rank of a severity (lower first), as :data:`SEVERITY_RANK_SQL` computes it."""
    return _RANKS.get(severity, 1)


# A later notice waits while the first notice of the same incident to the same contact
# on the same channel is pending (migration 0014): a follow-up or resolved notice never
# overtakes the first one still queued, retried or being sent.
_IN_ORDER = (" AND (phase = 'firing' OR NOT EXISTS (SELECT 1 FROM deliveries AS first"
             " INDEXED BY deliveries_first_pending"
             " WHERE first.incident_key = deliveries.incident_key"
             " AND first.contact_id = deliveries.contact_id"
             " AND first.channel = deliveries.channel"
             " AND first.status = 'pending' AND first.phase = 'firing'"
             " AND first.id < deliveries.id))")
_PENDING = "FROM deliveries{hint} WHERE status = 'pending'" + _IN_ORDER
_INDEX = " INDEXED BY deliveries_lane_due"  # migration 0007: walked in claim order


def claim_sql(slots: LaneSlots, now: str, lease: str) -> tuple[str, list[Any]] | None:
    """The statement leasing what ``slots`` allows at ``now`` (None: nothing to claim).

    Each lane's part walks the index ``deliveries_lane_due`` of its channel in claim
    order and stops at its limit; the ``other`` part reads only the index ranges
    between the lanes' channels (rows of channels without a lane), so neither visits
    another lane's backlog.
    """
    parts: list[str] = []
    params: list[Any] = [lease, lease, now]
    order = f"ORDER BY {SEVERITY_RANK_SQL}, next_attempt_at, id"
    for channel, limit in sorted(slots.per_channel.items()):
        if limit <= 0:
            continue
        parts.append(f"SELECT id FROM (SELECT id {_PENDING.format(hint=_INDEX)}"
                     f" AND channel = ? AND next_attempt_at <= ? {order} LIMIT ?)")
        params += [channel, now, limit]
    if slots.other > 0:
        lanes = sorted(slots.per_channel)
        if not lanes:
            parts.append(f"SELECT id FROM (SELECT id {_PENDING.format(hint='')}"
                         f" AND next_attempt_at <= ? {order} LIMIT ?)")
            params += [now, slots.other]
        else:
            ranges: list[tuple[str, list[str]]] = [("channel < ?", [lanes[0]])]
            ranges += [("channel > ? AND channel < ?", [low, high])
                       for low, high in pairwise(lanes)]
            ranges.append(("channel > ?", [lanes[-1]]))
            selects: list[str] = []
            for condition, bounds in ranges:
                selects.append(f"SELECT id, {SEVERITY_RANK_SQL} AS rank, next_attempt_at AS due"
                               f" {_PENDING.format(hint=_INDEX)} AND {condition}"
                               " AND next_attempt_at <= ?")
                params += [*bounds, now]
            parts.append(f"SELECT id FROM (SELECT id FROM ({' UNION ALL '.join(selects)})"
                         " ORDER BY rank, due, id LIMIT ?)")
            params.append(slots.other)
    if not parts:
        return None
    sql = ("UPDATE deliveries SET lease_until = ?, next_attempt_at = ?,"
           " attempts = attempts + 1, updated_at = ?"
           f" WHERE id IN ({' UNION ALL '.join(parts)}) RETURNING *")
    return sql, params
