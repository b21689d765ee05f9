"""Typed application state of the HTTP app (``web.AppKey``) and the service run state.

The values are put there by the composition root (:mod:`router.app`); the routes only
read them. Worker types are named here for typing only: ``router.http`` imports no
worker module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from router.acks import AckLinks, Acknowledger
from router.clock import Clock
from router.config import ServiceConfig
from router.instances import InstanceStatus
from router.store import Store

if TYPE_CHECKING:
    from adapters.registry import KafkaPublisher, KafkaSource, SnsInboundClient
    from router.backpressure import Backpressure
    from router.rules import RuleSet
    from router.workers.intake import IntakeProcessor
    from router.workers.reloader import RuleReloader

__all__ = [
    "ACKNOWLEDGER",
    "ACK_LINKS",
    "BACKPRESSURE",
    "CLOCK",
    "CONFIG",
    "INSTANCE",
    "KAFKA_PUBLISHER",
    "KAFKA_SOURCE",
    "PROCESSOR",
    "RELOADER",
    "RULES",
    "SNS_INBOUND",
    "STATE",
    "STORE",
    "RulesRef",
    "ServiceState",
]


class RulesRef:
    """The rule set in use; a holder so that a reload can swap it on a running app.

    Assigning :attr:`current` (the reloader's atomic swap) records when
    (:attr:`loaded_at`) and calls every function of :attr:`on_swap` with the new rules
    (the composition root sets the contact gauges there)."""

    def __init__(self, current: RuleSet | None = None, *,
                 on_swap: Sequence[Callable[[RuleSet], None]] = (),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self.on_swap: list[Callable[[RuleSet], None]] = list(on_swap)
        self.loaded_at: datetime | None = None
        self._current: RuleSet | None = None
        self.current = current

    @property
    def current(self) -> RuleSet | None:
        """The rule set in force (None before the first load)."""
        return self._current

    @current.setter
    def current(self, rules: RuleSet | None) -> None:
        self._current = rules
        if rules is not None:
            self.loaded_at = self._now()
            for hook in self.on_swap:
                hook(rules)


@dataclass
class ServiceState:
    """What the probes report and what a shutdown request changes.

    ``draining`` turns ``/readyz`` to 503; ``stop_requested`` wakes the service loop
    (signal received, or a background worker died: then ``exit_code`` is 1).
    """

    draining: bool = False
    exit_code: int = 0
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask the service to drain and stop; the first non-zero exit code wins."""
        if exit_code and not self.exit_code:
            self.exit_code = exit_code
        self.stop_requested.set()


CONFIG: web.AppKey[ServiceConfig] = web.AppKey("config")
STORE: web.AppKey[Store] = web.AppKey("store")
RULES: web.AppKey[RulesRef] = web.AppKey("rules")
STATE: web.AppKey[ServiceState] = web.AppKey("state")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
PROCESSOR: web.AppKey[IntakeProcessor] = web.AppKey("processor")
KAFKA_SOURCE: web.AppKey[KafkaSource] = web.AppKey("kafka_source")  # kafka.topics set
KAFKA_PUBLISHER: web.AppKey[KafkaPublisher] = web.AppKey("kafka_publisher")  # cluster ingest
BACKPRESSURE: web.AppKey[Backpressure] = web.AppKey("backpressure")  # ingest held back?
ACKNOWLEDGER: web.AppKey[Acknowledger] = web.AppKey("acknowledger")  # records answers
ACK_LINKS: web.AppKey[AckLinks] = web.AppKey("ack_links")  # set when acks.link_key is
SNS_INBOUND: web.AppKey[SnsInboundClient] = web.AppKey("sns_inbound")  # sns.inbound.enabled
INSTANCE: web.AppKey[InstanceStatus] = web.AppKey("instance")  # id, rule-set agreement
RELOADER: web.AppKey[RuleReloader] = web.AppKey("rules_reloader")  # POST /-/reload, SIGHUP
