"""The contract every outbound channel adapter implements.

An adapter sends one message and says how it went: a :class:`~router.models.Receipt` on
success, :class:`~router.errors.DeliveryError` (``retryable`` true or false, optional
``retry_after_s``) on failure. It never sleeps and never retries by itself: retry,
backoff, deadlines, rate limits and circuit breakers live in the dispatcher (one lane
per channel), in one place.
"""

from __future__ import annotations

from typing import Protocol

from router.models import OutboundMessage, Receipt

__all__ = ["Channel"]


class Channel(Protocol):
    """An outbound channel: "email" (SMTP), "sms" and "topic" (SNS), "push" (Web Push)."""

    name: str

    async def send(self, message: OutboundMessage) -> Receipt:
        """Deliver ``message`` to ``message.recipient``; raise DeliveryError on failure."""
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...
