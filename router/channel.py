"""The contract every outbound channel adapter implements.

An adapter sends one message and says how it went: a :class:`~router.models.Receipt` on
success, :class:`~router.errors.DeliveryError` (``retryable`` true or false, optional
``retry_after_s``) on failure. It never sleeps and never retries by itself: retry,
backoff, deadlines and (later) rate limits live in the dispatcher, in one place.
"""

from __future__ import annotations

from typing import Protocol

from router.models import OutboundMessage, Receipt

__all__ = ["Channel"]


class Channel(Protocol):
    """An outbound channel ("email", later "sms", "push", ...)."""

    name: str

    async def send(self, message: OutboundMessage) -> Receipt:
        """Deliver ``message`` to ``message.recipient``; raise DeliveryError on failure."""
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...
