"""RetryPolicy: exponential backoff with full jitter, Retry-After floor, deadline."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.workers.retry import RetryPolicy
from tests.store.factories import T0


class MaxRandom(random.Random):
    """Always draws the top of the jitter range (to observe the backoff cap)."""

    def uniform(self, a: float, b: float) -> float:
        return b


POLICY = RetryPolicy(initial_s=1, max_s=60)
FAR = T0 + timedelta(days=1)


def test_backoff_doubles_up_to_the_cap() -> None:
    """The upper bound of the wait doubles per attempt and stops at max_s."""
    delays = [
        (POLICY.next_attempt(n, T0, FAR, None, MaxRandom()) - T0).total_seconds()  # type: ignore[operator]
        for n in range(1, 9)
    ]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]


@given(attempts=st.integers(1, 10_000), seed=st.integers(0, 2**32))
def test_jittered_wait_stays_within_zero_and_cap(attempts: int, seed: int) -> None:
    """Every wait lies in [0, cap(attempts)], whatever the attempt count."""
    when = POLICY.next_attempt(attempts, T0, FAR, None, random.Random(seed))
    assert when is not None
    assert 0 <= (when - T0).total_seconds() <= POLICY.backoff_cap_s(attempts) <= 60


def test_jitter_spreads_retries() -> None:
    """Different random draws give different retry times (no thundering herd)."""
    rng = random.Random(1)
    times = {POLICY.next_attempt(5, T0, FAR, None, rng) for _ in range(20)}
    assert len(times) > 10


def test_retry_after_is_a_floor() -> None:
    """A provider's Retry-After is honoured even above the jittered wait and max_s."""
    when = POLICY.next_attempt(1, T0, FAR, 120.0, random.Random(0))
    assert when == T0 + timedelta(seconds=120)


def test_past_deadline_gives_up() -> None:
    """None when the next try would fall after the deadline."""
    deadline = T0 + timedelta(seconds=10)
    assert POLICY.next_attempt(1, T0, deadline, 30.0, random.Random(0)) is None
    assert POLICY.next_attempt(8, T0, T0, None, MaxRandom()) is None


@pytest.mark.parametrize(("initial_s", "max_s"), [(0, 10), (5, 1), (-1, 10)])
def test_invalid_policies_are_refused(initial_s: float, max_s: float) -> None:
    """A policy that cannot make sense fails at construction."""
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(initial_s=initial_s, max_s=max_s)
