"""Per-channel rate limits: a token bucket that hands out send times.

The bucket holds up to ``burst`` tokens and gains ``rate_per_s`` per second. Instead of
blocking, :meth:`TokenBucket.reserve` takes a token (possibly going into debt) and says
how long the caller must wait before using it, so concurrent senders are spaced out
exactly: over any window of ``w`` seconds at most ``burst + rate_per_s * w`` sends start.
A caller that will not wait that long gives the token back with :meth:`cancel`.

The clock is passed in (``monotonic``), so the arithmetic is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate_per_s`` sends per second with bursts of at most ``burst``."""

    def __init__(self, rate_per_s: float, *, burst: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0 (leave the limit out to disable it)")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._monotonic = monotonic
        self._tokens = burst
        self._updated = monotonic()

    def reserve(self) -> float:
        """Take one token; return the seconds to wait before using it (0 if available)."""
        now = self._monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate_per_s

    def cancel(self) -> None:
        """Give back a token taken by :meth:`reserve` and not used."""
        self._tokens = min(self.burst, self._tokens + 1)
