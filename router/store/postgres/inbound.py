"""Inbound messages already handled (``inbound_messages``): duplicates act once.

The same semantics as :mod:`router.store.sqlite.inbound`, shared by every instance: the
primary key ``(kind, message_id)`` decides which one acts (an instance inserting an id
another one is inserting waits for its commit, then sees a duplicate). Each function
runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from router.store.postgres import queries as q
from router.store.sqlite.inbound import FORGET_BATCH

__all__ = ["forget_inbound", "remember_inbound"]

Conn = AsyncConnection[Any]


async def remember_inbound(conn: Conn, kind: str, message_id: str, at: datetime,
                           forget_before: datetime | None) -> bool:
    """Record ``(kind, message_id)``; True when it was not known yet. ``forget_before``:
    first forget at most :data:`~router.store.sqlite.inbound.FORGET_BATCH` older ids."""
    if forget_before is not None:
        await conn.execute(q.FORGET_OLD_INBOUND, (forget_before, FORGET_BATCH))
    cur = await conn.execute(q.REMEMBER_INBOUND, (kind, message_id, at))
    return cur.rowcount == 1


async def forget_inbound(conn: Conn, kind: str, message_id: str) -> None:
    """Forget ``(kind, message_id)`` (its handling failed: a retry must act)."""
    await conn.execute(q.FORGET_INBOUND, (kind, message_id))
