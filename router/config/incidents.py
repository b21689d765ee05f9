"""The ``incidents`` section of the service configuration (scheduler and test seams)."""

from __future__ import annotations

from pydantic import Field

from router.strict import Strict

__all__ = ["IncidentsConfig"]


class IncidentsConfig(Strict):
    """How the incident scheduler runs.

    ``timer_scale`` multiplies every rule timer (``group_wait``, ``group_interval``,
    ``repeat_interval``, ``follow_up_after``) of incidents opened from now on: ``1`` in
    production; tests and demos use e.g. ``0.01`` to live an incident in seconds.
    Quiet hours and time intervals are wall-clock windows and are never scaled.
    """

    poll_interval_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=200, ge=1)
    timer_scale: float = Field(default=1.0, gt=0, le=1)
