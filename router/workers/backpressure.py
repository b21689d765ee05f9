"""The back-pressure sampler: samples the backlog every ``backpressure.check_interval_s``.

The decision itself (:func:`router.backpressure.decide`) and the state the webhook and
the Kafka source read (:class:`router.backpressure.Backpressure`) are not a worker; this
loop only keeps that state fresh between requests.
"""

from __future__ import annotations

from router.backpressure import Backpressure
from router.workers.loop import Loop

__all__ = ["BackpressureSampler"]


class BackpressureSampler(Loop):
    """Calls :meth:`Backpressure.sample` every ``check_interval_s`` until stopped."""

    name = "backpressure"
    failure_event = "backpressure.sample_failed"

    def __init__(self, pressure: Backpressure) -> None:
        self._pressure = pressure
        super().__init__(poll_interval_s=pressure.config.check_interval_s)

    async def one_pass(self) -> float | None:
        """Sample the backlog (a failing store keeps the previous decision)."""
        await self._pressure.sample()
        return None
