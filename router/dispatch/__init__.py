"""The outbox dispatcher: claims due deliveries and sends them through channel adapters."""

from __future__ import annotations

from router.dispatch.channel import Channel
from router.dispatch.dispatcher import Dispatcher, Outcome
from router.dispatch.retry import RetryPolicy

__all__ = ["Channel", "Dispatcher", "Outcome", "RetryPolicy"]
