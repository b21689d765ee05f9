"""The ``retention`` section: how long each kind of history is kept."""

from __future__ import annotations

from pydantic import Field

from router.strict import Strict

__all__ = ["RetentionConfig"]


class RetentionConfig(Strict):
    """The ``retention`` section: how long each kind of history is kept (days)."""

    intake_days: float = Field(default=7.0, ge=0)  # routed intake rows (the ingest log)
    # Sent and dead-lettered deliveries, and dead-lettered intake rows (by dead_at).
    deliveries_days: float = Field(default=90.0, ge=0)
    incidents_days: float = Field(default=90.0, ge=0)  # resolved incidents and timelines
    interval_s: float = Field(default=3600.0, gt=0)  # time between two passes
    batch_rows: int = Field(default=2000, ge=1)  # rows deleted per transaction at most
    pause_s: float = Field(default=0.05, ge=0)  # pause between two transactions

    def keep_days(self, kind: str) -> float:
        """The configured age of ``kind`` (0: keep forever). Dead-lettered intake rows
        are kept as long as dead-lettered deliveries: both are what an operator replays."""
        return {"intake": self.intake_days, "dead_intake": self.deliveries_days,
                "deliveries": self.deliveries_days, "incidents": self.incidents_days}[kind]
