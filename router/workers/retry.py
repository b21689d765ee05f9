"""When to try a failed delivery again: exponential backoff, full jitter, a deadline.

The decision is a pure function of (attempts so far, now, the delivery's deadline, the
provider's Retry-After, a random source), so it is tested without a clock or sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter ("AWS full jitter").

    The n-th retry waits a uniform random time in ``[0, min(max_s, initial_s * 2**(n-1))]``;
    a provider's Retry-After is a floor on that wait. Jitter spreads the retries of a
    storm so that a recovering SMTP server or SNS endpoint is not hit all at once.
    """

    initial_s: float = 1.0
    max_s: float = 300.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError(
                "RetryPolicy needs 0 < initial_s <= max_s and multiplier >= 1, got "
                f"initial_s={self.initial_s}, max_s={self.max_s}, multiplier={self.multiplier}"
            )

    def backoff_cap_s(self, attempts: int) -> float:
        """Upper bound of the wait after ``attempts`` failed attempts (>= 1)."""
        exponent = max(attempts, 1) - 1
        # Cap the exponent so huge attempt counts cannot overflow the float.
        return min(self.max_s, self.initial_s * self.multiplier ** min(exponent, 64))

    def next_attempt(
        self,
        attempts: int,
        now: datetime,
        deadline: datetime,
        retry_after_s: float | None,
        rng: random.Random,
    ) -> datetime | None:
        """When to try again after ``attempts`` failed attempts, or None to give up.

        None means the next try would fall after ``deadline``: the caller marks the
        delivery failed ("deadline exceeded after N attempts: <last error>").
        """
        delay_s = rng.uniform(0.0, self.backoff_cap_s(attempts))
        if retry_after_s is not None and retry_after_s > delay_s:
            delay_s = retry_after_s
        when = now + timedelta(seconds=delay_s)
        if when > deadline:
            return None
        return when
