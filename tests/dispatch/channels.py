"""An in-test channel: records what it is asked to send and follows a script.

It implements the Channel protocol for real (it is the dispatcher's own seam, not a
protocol crossing): each call pops the next scripted step — an exception to raise or a
Receipt to return (default: success). With ``gate`` set, every send first waits for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from router.models import OutboundMessage, Receipt


@dataclass
class ScriptedChannel:
    """A channel whose behaviour per call is scripted by the test."""

    name: str = "email"
    script: list[BaseException | Receipt] = field(default_factory=list)
    gate: asyncio.Event | None = None
    sent: list[OutboundMessage] = field(default_factory=list)
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    closed: bool = False

    async def send(self, message: OutboundMessage) -> Receipt:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            step = self.script.pop(0) if self.script else Receipt(provider_id=f"id-{self.calls}")
            if isinstance(step, BaseException):
                raise step
            self.sent.append(message)
            return step
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        self.closed = True
