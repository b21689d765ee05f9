"""The ``dispatch`` section: per-channel lanes, retries, deadline and claim lease."""

from __future__ import annotations

from pydantic import Field
from pydantic import model_validator as _model_validator

from router.strict import Strict

__all__ = ["DispatchConfig", "LaneConfig", "LanesConfig"]


class LaneConfig(Strict):
    """One channel's lane (``dispatch.lanes.<channel>``); a key left out takes the
    ``dispatch`` default (``concurrency``, ``breaker_*``) or, for ``rate_per_s``, the
    channel section's (``sns.rate_per_s``, ``sns.topic_rate_per_s``,
    ``webpush.rate_per_s``; e-mail: unlimited)."""

    concurrency: int | None = Field(default=None, ge=1, le=1024)
    rate_per_s: float | None = Field(default=None, ge=0)  # 0 = unlimited
    burst: float = Field(default=1.0, ge=1)
    breaker_failures: int | None = Field(default=None, ge=0)  # 0 = no circuit breaker
    breaker_cooldown_s: float | None = Field(default=None, gt=0)


class LanesConfig(Strict):
    """``dispatch.lanes``: the lane of each channel (``TOCSIN_DISPATCH__LANES__SMS__...``)."""

    email: LaneConfig = Field(default_factory=LaneConfig)
    sms: LaneConfig = Field(default_factory=LaneConfig)
    topic: LaneConfig = Field(default_factory=LaneConfig)
    push: LaneConfig = Field(default_factory=LaneConfig)


class DispatchConfig(Strict):
    """Outbox dispatch: per-channel lanes, retry schedule, delivery deadline, claim lease."""

    # Send slots of each channel's lane (each lane has its own; lanes.<channel> overrides).
    concurrency: int = Field(default=8, ge=1, le=1024)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    deadline_s: float = Field(default=3600.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    poll_interval_s: float = Field(default=0.5, gt=0)
    # Circuit breaker of each lane: open after this many consecutive retryable failures
    # or timeouts (0 disables), for breaker_cooldown_s, then one probe.
    breaker_failures: int = Field(default=5, ge=0)
    breaker_cooldown_s: float = Field(default=30.0, gt=0)
    lanes: LanesConfig = Field(default_factory=LanesConfig)

    @_model_validator(mode="after")
    def _backoff_order(self) -> DispatchConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("dispatch.backoff_max_s must be >= dispatch.backoff_initial_s")
        return self
