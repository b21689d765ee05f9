"""The ``backpressure`` section: the backlog bounds above which ingest is held back.

The decision itself is :mod:`router.backpressure`.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from router.strict import Strict

__all__ = ["BOUND_KEYS", "BackpressureConfig"]

#: The config key bounding each stage.
BOUND_KEYS: Final = {
    "intake": "max_intake_pending",
    "incidents": "max_overdue_incidents",
    "deliveries": "max_due_deliveries",
}


class BackpressureConfig(Strict):
    """The ``backpressure`` section: backlog bounds above which ingest is held back.

    The defaults let ordinary storms through: 10,000 unrouted alerts are about two
    seconds of routing at the measured rate (bench/README.md, P3: ~5k alerts/s), and
    10,000 overdue incidents or 20,000 due deliveries are far beyond a large outage
    (hundreds of incidents, a few notices each); a flood that keeps them growing is held.
    """

    enabled: bool = True  # false: measure the backlog, never hold ingest back
    max_intake_pending: int = Field(default=10_000, ge=1)
    max_overdue_incidents: int = Field(default=10_000, ge=1)
    max_due_deliveries: int = Field(default=20_000, ge=1)
    # released once every stage is at or below this fraction of its bound
    resume_ratio: float = Field(default=0.8, ge=0, lt=1)
    retry_after_s: int = Field(default=5, ge=1)  # the webhook's Retry-After while engaged
    check_interval_s: float = Field(default=0.5, gt=0)  # how often the store is sampled
    # an incident counts as overdue once its timer is this late (a flush in progress is not)
    overdue_grace_s: float = Field(default=5.0, ge=0)

    def bound(self, stage: str) -> int:
        """The bound of ``stage`` (one of :data:`router.store.BACKLOG_STAGES`)."""
        value: int = getattr(self, BOUND_KEYS[stage])
        return value
