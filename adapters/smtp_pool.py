"""Idle SMTP connections kept for the next message (the email channel's pool).

Opening a connection costs the greeting, EHLO and, when configured, STARTTLS and AUTH:
most of the time of a submission on a near server. The pool keeps up to ``max_idle``
connections that finished a transaction cleanly, for at most ``idle_s`` seconds (servers
drop idle clients after a few minutes; RFC 5321 4.5.3.2 asks them to wait 5). A
connection is only ever returned after a message was accepted (250 after DATA): one
that failed in any way is closed, so the pool never holds a connection in an unknown
state. Whether a pooled connection is still alive is only known by using it: the caller
retries once on a fresh connection when a reused one turns out to be closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiosmtplib
import structlog

__all__ = ["SmtpPool"]

_log = structlog.get_logger(__name__)

#: How long closing one idle connection (QUIT) may take at shutdown or expiry.
QUIT_TIMEOUT_S = 2.0


class SmtpPool:
    """Hands out connected clients: a pooled idle one when fresh enough, else a new one."""

    def __init__(self, factory: Callable[[], aiosmtplib.SMTP], *, max_idle: int,
                 idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_idle < 0:
            raise ValueError("max_idle must be >= 0")
        self._factory = factory
        self._max_idle = max_idle
        self._idle_s = idle_s
        self._clock = clock
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []  # (client, idle since)
        self.opened = 0  # connections opened so far (tests, debugging)

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    async def acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        """A connected client and whether it was reused from the pool."""
        now = self._clock()
        while self._idle:
            client, since = self._idle.pop()  # the most recently used first
            if client.is_connected and now - since < self._idle_s:
                return client, True
            await self._quit(client)
        client = self._factory()
        await client.connect()
        self.opened += 1
        return client, False

    async def release(self, client: aiosmtplib.SMTP) -> None:
        """Give back a client whose transaction succeeded (kept or closed)."""
        if client.is_connected and len(self._idle) < self._max_idle:
            self._idle.append((client, self._clock()))
        else:
            await self._quit(client)

    def discard(self, client: aiosmtplib.SMTP) -> None:
        """Drop a client after a failure: closed at once, never reused."""
        client.close()

    async def close(self) -> None:
        """QUIT every idle connection (bounded)."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(client) for client, _ in idle))

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            return
        try:
            async with asyncio.timeout(QUIT_TIMEOUT_S):
                await client.quit()
        except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
            _log.debug("smtp.quit_failed", error=str(exc))
            client.close()
