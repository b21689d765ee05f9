"""A circuit breaker per channel: stop attempting a channel that keeps failing.

After ``failures`` consecutive retryable failures (provider errors, timeouts) the
breaker *opens*: the channel's lane claims nothing for ``cooldown_s``, so its
deliveries stay pending (no attempt counted, never dropped) while the other lanes go
on. Then it is *half-open*: one delivery is attempted as a probe. A success (or any
answer that is not a retryable failure: the provider is reachable) closes it; a
retryable failure opens it again for another cool-down.

Time comes from the injected :class:`~router.clock.Clock`, so the whole cycle is tested
with a :class:`~router.clock.FakeClock`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import structlog

from router.clock import Clock
from router.metrics import CIRCUIT_OPEN, CIRCUIT_OPENED

__all__ = ["BreakerState", "CircuitBreaker"]

_log = structlog.get_logger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure breaker of one channel (``failures`` >= 1)."""

    def __init__(self, channel: str, *, failures: int, cooldown_s: float,
                 clock: Clock) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be > 0")
        self.channel = channel
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive = 0
        self._opened_until: datetime | None = None  # set while open or half-open
        CIRCUIT_OPEN.labels(channel=channel).set(0)

    @property
    def state(self) -> BreakerState:
        """closed, open (attempt nothing) or half_open (one probe may go)."""
        if self._opened_until is None:
            return "closed"
        return "open" if self._clock.now() < self._opened_until else "half_open"

    @property
    def reopens_at(self) -> datetime | None:
        """When an open breaker lets a probe through (None when not open)."""
        return self._opened_until if self.state == "open" else None

    def record_success(self) -> None:
        """The channel answered: close (from any state) and reset the count."""
        self._consecutive = 0
        if self._opened_until is not None:
            self._opened_until = None
            CIRCUIT_OPEN.labels(channel=self.channel).set(0)
            _log.info("channel.circuit_closed", channel=self.channel)

    def record_failure(self) -> None:
        """A retryable failure or a timeout: open after ``failures`` in a row; a failed
        probe (half-open) opens again at once."""
        self._consecutive += 1
        state = self.state
        if state == "open":
            return  # a send started before the breaker opened
        if state == "half_open" or self._consecutive >= self.failures:
            self._opened_until = self._clock.now() + timedelta(seconds=self.cooldown_s)
            CIRCUIT_OPEN.labels(channel=self.channel).set(1)
            CIRCUIT_OPENED.labels(channel=self.channel).inc()
            _log.warning("channel.circuit_opened", channel=self.channel,
                         consecutive_failures=self._consecutive,
                         cooldown_s=self.cooldown_s, probe=state == "half_open")
