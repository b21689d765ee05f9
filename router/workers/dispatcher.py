"""The dispatcher: sends due outbox deliveries through their channel, with retries.

Lanes: every channel with an adapter is a *lane* with its own send slots
(``concurrency``), rate limit, claim and circuit breaker, so a channel that hangs, is
rate limited or is down never delays another: an SMTP server that accepts connections
and never answers holds the e-mail lane's slots only, and e-mail is not sent at the
SMS rate. Deliveries of channels without an adapter go through one more lane
(``other``) that dead-letters them. Within a lane the most severe delivery goes first
(critical, warning, info), then the oldest due.

Loop: reserve each lane's free slots, claim due deliveries with a lease (at most that
many per lane, in one store transaction), send each concurrently (``asyncio.wait_for``
bounds every send), then record the outcome:

- success → ``mark_sent`` (written *after* the send: a crash mid-send resends, never
  suppresses);
- ``DeliveryError(retryable=True)``, a timeout or an unexpected exception (logged with
  its traceback and counted in ``tocsin_pipeline_item_failures_total{stage="send"}``,
  reason its class) → ``mark_retry`` at the time the :class:`RetryPolicy` picks, or
  ``mark_failed`` "deadline exceeded after N attempts: <last error>" when the next try
  would pass the delivery's deadline;
- ``DeliveryError(retryable=False)`` or no adapter for the channel → ``mark_failed``.

``mark_failed`` makes the row a *dead letter* with a reason (``permanent``, ``deadline``
or ``unconfigured``), counted in ``tocsin_dead_letters``; in the same store transaction
the delivery's planned fallback (``route.fallback: {sms: email}``) becomes a new pending
delivery to the same contact. Replay dead letters with ``tocsin deliveries retry``.

Rate limits: a lane with a limit (sends per second, bursts of ``burst``) takes a token
from its :class:`TokenBucket` before each send and waits for it; when the wait would be
longer than the lease allows, the row is handed back (``defer``) to be claimed later,
without counting an attempt.

Circuit breaker (:class:`~router.workers.breaker.CircuitBreaker`): after
``breaker_failures`` consecutive retryable failures or timeouts of a channel, its lane
claims nothing for ``breaker_cooldown_s``, then one probe; rows it had claimed and not
yet sent are handed back unattempted. Its deliveries stay pending, never dropped.

A delivery is always attempted at least once, even if it is claimed after its deadline
(e.g. the service was down): the deadline bounds retries, not the first try.

Claims made elsewhere: the scheduler claims the deliveries of a flush inside the flush's
own transaction (one fsync'ed transaction less on the alert's path) and hands them over
with :meth:`Dispatcher.offer`. Every claimer first reserves the free send slots of every
lane (:meth:`Dispatcher.reserve`) and claims at most that many per lane, so the
dispatcher's own loop and the scheduler together never hold more than a lane's
``concurrency`` leases in flight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from router.channel import Channel
from router.clock import Clock
from router.errors import STORED_ERROR_CHARS, DeliveryError, excerpt
from router.logging import mask_text
from router.masking import mask_address
from router.metrics import (
    CHANNEL_IN_FLIGHT,
    CHANNEL_QUEUED,
    CLAIMS,
    DEAD_LETTERS,
    DELIVERIES,
    DISPATCH_LATENCY,
    FALLBACKS_PLANNED,
    OUTBOX_DEPTH,
    OUTBOX_STATUSES,
    PIPELINE_ITEM_FAILURES,
    RATE_LIMITED,
    SMS_SEGMENTS,
)
from router.models import Delivery, OutboundMessage, Receipt
from router.store.base import LaneSlots, Store
from router.workers.breaker import CircuitBreaker
from router.workers.loop import Loop
from router.workers.ratelimit import TokenBucket
from router.workers.retry import RetryPolicy

__all__ = ["OTHER_LANE", "Dispatcher", "LaneSettings", "Outcome"]

_log = structlog.get_logger(__name__)

_GAUGE_REFRESH_S = 1.0

#: The lane (and metric label) of deliveries whose channel has no adapter.
OTHER_LANE = "other"


@dataclass(frozen=True, slots=True)
class LaneSettings:
    """One channel's lane: send slots, rate limit and circuit breaker.

    ``rate_per_s`` 0: unlimited. ``breaker_failures`` 0: no circuit breaker.
    """

    concurrency: int = 8
    rate_per_s: float = 0.0
    burst: float = 1.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("a lane's concurrency must be >= 1")
        if self.rate_per_s < 0 or self.burst < 1:
            raise ValueError("a lane needs rate_per_s >= 0 and burst >= 1")
        if self.breaker_failures < 0 or self.breaker_cooldown_s <= 0:
            raise ValueError("a lane needs breaker_failures >= 0 and breaker_cooldown_s > 0")


@dataclass(eq=False)
class _Lane:
    """The live state of one lane."""

    name: str
    concurrency: int
    bucket: TokenBucket | None = None
    breaker: CircuitBreaker | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    reserved: int = 0  # slots reserved by claims in progress (ours or the scheduler's)
    backlog: bool = False  # its last claim filled its slots: more is probably due

    def free(self) -> int:
        """Slots a claim may take now: none while the breaker is open, one probe when
        it is half-open (and nothing else of the lane is out)."""
        state = "closed" if self.breaker is None else self.breaker.state
        limit = {"closed": self.concurrency, "half_open": 1, "open": 0}[state]
        return max(0, limit - len(self.inflight) - self.reserved)

    def gauge(self) -> None:
        CHANNEL_IN_FLIGHT.labels(channel=self.name).set(len(self.inflight))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: a receipt, or an error that is retryable or not."""

    receipt: Receipt | None = None
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    dead_letter_reason: str = "permanent"  # when failed for good without retrying


class Dispatcher(Loop):
    """Claims due deliveries and sends them, lane by lane (one lane per channel)."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        clock: Clock,
        policy: RetryPolicy,
        concurrency: int = 8,
        lease_s: float = 60,
        poll_interval_s: float = 0.5,
        send_timeout_s: float | None = None,
        drain_timeout_s: float | None = None,
        rng: random.Random | None = None,
        rate_limits: Mapping[str, float] | None = None,
        lanes: Mapping[str, LaneSettings] | None = None,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 30.0,
    ) -> None:
        """``concurrency``, ``rate_limits`` and the ``breaker_*`` values are the defaults
        of every channel's lane; ``lanes`` sets a channel's lane in full."""
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        timeout_s = send_timeout_s if send_timeout_s is not None else min(30.0, lease_s / 2)
        if not 0 < timeout_s < lease_s:
            # A send outliving its lease could be claimed and sent a second time.
            raise ValueError(f"send_timeout_s ({timeout_s}) must be > 0 and < lease_s "
                             f"({lease_s})")
        self._store = store
        self._channels = channels
        self._clock = clock
        self._policy = policy
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._send_timeout_s = timeout_s
        self._drain_timeout_s = drain_timeout_s if drain_timeout_s is not None else timeout_s + 5
        self._rng = rng if rng is not None else random.Random()
        self._starved = False  # the loop found every free slot reserved: wake it on release
        self._draining = False  # the loop has stopped: nothing new is started
        super().__init__(poll_interval_s=poll_interval_s)
        self._gauges_refreshed_at = float("-inf")
        self._lanes: dict[str, _Lane] = {}
        for name in channels:
            settings = (lanes or {}).get(name) or LaneSettings(
                concurrency=concurrency, rate_per_s=(rate_limits or {}).get(name, 0.0),
                breaker_failures=breaker_failures, breaker_cooldown_s=breaker_cooldown_s)
            self._lanes[name] = self._lane(name, settings)
        # Channels without an adapter: dead-lettered at once, no rate limit or breaker.
        self._other = _Lane(OTHER_LANE, concurrency)
        for lane in self._all_lanes():
            lane.gauge()
        # Longest wait for a token while holding a lease (the send must still fit in it).
        self._max_rate_wait_s = max(0.0, lease_s - timeout_s - 1.0)

    def _lane(self, name: str, settings: LaneSettings) -> _Lane:
        bucket = (TokenBucket(settings.rate_per_s, burst=settings.burst)
                  if settings.rate_per_s > 0 else None)
        breaker = (CircuitBreaker(name, failures=settings.breaker_failures,
                                  cooldown_s=settings.breaker_cooldown_s, clock=self._clock)
                   if settings.breaker_failures > 0 else None)
        return _Lane(name, settings.concurrency, bucket=bucket, breaker=breaker)

    def _all_lanes(self) -> Iterator[_Lane]:
        yield from self._lanes.values()
        yield self._other

    def _lane_of(self, channel: str) -> _Lane:
        return self._lanes.get(channel, self._other)

    # -- control ----------------------------------------------------------------------

    name = "dispatcher"
    failure_event = "dispatch.claim_failed"

    def notify(self) -> None:
        """New deliveries were planned: claim now rather than at the next poll."""
        self.wake()

    # The loop (router.workers.loop.Loop.run): claim and send until stop(); then let the
    # in-flight sends finish (bounded).

    async def one_pass(self) -> float | None:
        """One claim for every lane's free slots; go on at once while a lane filled its
        slots and some lane has a free one."""
        try:
            full = await self._claim_and_start()
        finally:
            await self._refresh_gauges()
        if full and any(lane.free() > 0 for lane in self._all_lanes()):
            return 0  # more may be due right now
        return None

    async def on_stop(self) -> None:
        """Let in-flight sends finish (bounded by ``drain_timeout_s``)."""
        try:
            await self._drain()
        finally:
            self._draining = False

    @property
    def lease_s(self) -> float:
        """How long a claim leases a delivery (claimers outside the loop use it too)."""
        return self._lease_s

    def breaker_state(self, channel: str) -> str:
        """``closed``, ``open`` or ``half_open`` (``closed`` for a lane without one)."""
        breaker = self._lane_of(channel).breaker
        return "closed" if breaker is None else breaker.state

    def reserve(self) -> LaneSlots:
        """Reserve every lane's free send slots for one claim; return them per lane.

        The caller claims at most that many deliveries per lane, then passes them to
        :meth:`offer` with the same slots, which starts them and releases the
        reservation, whatever happened in between (pass an empty list when the claim
        failed). Nothing is reserved while the dispatcher is not running (a lease taken
        then would only be claimed again after it ran out), nor for a lane whose
        circuit breaker is open.
        """
        if not self.running or self.stopping:
            return LaneSlots({name: 0 for name in self._lanes})
        per_channel: dict[str, int] = {}
        for lane in self._lanes.values():
            free = lane.free()
            if free <= 0 and lane.inflight:
                lane.backlog = True  # full: claim again as soon as one of its sends ends
            if free <= 0 and lane.reserved:
                self._starved = True  # another claim holds it: claim again on release
            lane.reserved += free
            per_channel[lane.name] = free
        other = self._other.free()
        self._other.reserved += other
        return LaneSlots(per_channel, other)

    def offer(self, deliveries: Sequence[Delivery], reserved: LaneSlots) -> None:
        """Send ``deliveries``, claimed elsewhere under the reservation ``reserved``."""
        CLAIMS.labels(role="delivery").inc(len(deliveries))  # claimed in a flush
        self._release(deliveries, reserved)
        if self._mark_backlog(deliveries, reserved):
            self.wake()  # a lane's claim was cut short by its slots: more may be due

    async def dispatch_once(self) -> int:
        """Claim what is due now (each lane's free slots), send it all, return the count."""
        slots = LaneSlots({name: lane.free() for name, lane in self._lanes.items()},
                          self._other.free())
        batch = await self._store.claim_lanes(self._clock.now(), slots, self._lease_s)
        CLAIMS.labels(role="delivery").inc(len(batch))
        await asyncio.gather(*(self._deliver(d) for d in batch))
        return len(batch)

    # -- loop internals ---------------------------------------------------------------

    async def _claim_and_start(self) -> bool:
        """One claim for every lane's free slots; True when a lane filled its slots."""
        slots = self.reserve()
        if slots.total <= 0:
            self._starved = self._starved or any(lane.reserved for lane in self._all_lanes())
            return False
        batch: list[Delivery] = []
        try:  # a failed claim is logged by the loop, which tries again after a back-off
            batch = await self._store.claim_lanes(self._clock.now(), slots, self._lease_s)
            CLAIMS.labels(role="delivery").inc(len(batch))
        finally:
            self._release(batch, slots)
        return self._mark_backlog(batch, slots)

    def _mark_backlog(self, claimed: Sequence[Delivery], slots: LaneSlots) -> bool:
        """Flag the lanes whose claim took all their slots; True if any did."""
        taken: dict[str, int] = {}
        for delivery in claimed:
            name = self._lane_of(delivery.channel).name
            taken[name] = taken.get(name, 0) + 1
        full = False
        for lane, limit in self._reservations(slots):
            if limit > 0:
                lane.backlog = taken.get(lane.name, 0) >= limit
                full = full or lane.backlog
        return full

    def _reservations(self, slots: LaneSlots) -> Iterator[tuple[_Lane, int]]:
        for name, limit in slots.per_channel.items():
            lane = self._lanes.get(name)
            if lane is None:
                raise ValueError(f"no lane for channel '{name}'")
            yield lane, limit
        yield self._other, slots.other

    def _release(self, deliveries: Sequence[Delivery], reserved: LaneSlots) -> None:
        """Start the claimed deliveries and give back the ``reserved`` slots."""
        reservations = list(self._reservations(reserved))
        counts: dict[str, int] = {}
        for delivery in deliveries:
            name = self._lane_of(delivery.channel).name
            counts[name] = counts.get(name, 0) + 1
        for lane, limit in reservations:
            if counts.get(lane.name, 0) > limit or limit > lane.reserved:
                raise ValueError(f"{counts.get(lane.name, 0)} deliveries for {limit} slots "
                                 f"of lane '{lane.name}' ({lane.reserved} reserved)")
        for lane, limit in reservations:
            lane.reserved -= limit
        if deliveries and self._draining:
            # Leased and not sent: claimed again when the lease runs out (as after a crash).
            _log.warning("dispatch.claimed_while_stopping", deliveries=len(deliveries))
        else:
            for delivery in deliveries:
                self._start(delivery)
        if self._starved and not any(lane.reserved for lane in self._all_lanes()):
            self._starved = False
            self.wake()  # the loop found no free slot while they were reserved

    def _start(self, delivery: Delivery) -> None:
        lane = self._lane_of(delivery.channel)
        task = asyncio.create_task(self._deliver(delivery),
                                   name=f"tocsin-delivery-{delivery.id}")
        lane.inflight.add(task)
        lane.gauge()

        def done(task: asyncio.Task[None]) -> None:
            lane.inflight.discard(task)
            lane.gauge()
            if lane.backlog:
                self.wake()  # a slot of the lane is free and more is probably due

        task.add_done_callback(done)

    async def _drain(self) -> None:
        self._draining = True
        pending = {task for lane in self._all_lanes() for task in lane.inflight}
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self._drain_timeout_s)
        for task in late:
            task.cancel()
        if late:
            # Their leases run out and they are sent again after a restart.
            _log.warning("dispatch.drain_timeout", cancelled=len(late))
            await asyncio.wait(late)

    async def _refresh_gauges(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._gauges_refreshed_at < _GAUGE_REFRESH_S:
            return
        self._gauges_refreshed_at = now
        try:
            counts = await self._store.counts(self._clock.now())
            queued = await self._store.due_by_channel(self._clock.now())
        except Exception:  # noqa: BLE001 - a metric must not stop deliveries
            _log.exception("dispatch.gauge_refresh_failed")
            return
        for status in OUTBOX_STATUSES:
            OUTBOX_DEPTH.labels(status=status).set(counts[status])
        other = 0
        for channel, count in queued.items():
            if channel in self._lanes:
                continue
            other += count
        for lane in self._lanes.values():
            CHANNEL_QUEUED.labels(channel=lane.name).set(queued.get(lane.name, 0))
        CHANNEL_QUEUED.labels(channel=OTHER_LANE).set(other)

    # -- one delivery -----------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            lane = self._lane_of(delivery.channel)
            if not await self._take_token(delivery, lane):
                return
            outcome = await self._attempt(delivery)
            if lane.breaker is not None:
                if outcome.retryable:
                    lane.breaker.record_failure()
                else:
                    lane.breaker.record_success()  # sent, or refused: the channel answers
            await self._record(delivery, outcome)
        except Exception:  # noqa: BLE001 - the lease expires and the row is retried
            _log.exception("dispatch.record_failed", delivery_id=delivery.id)

    async def _take_token(self, delivery: Delivery, lane: _Lane) -> bool:
        """Wait for the lane's rate limit; False when the row was handed back (rate
        limit, or the lane's breaker opened since the claim)."""
        if await self._held_by_breaker(delivery, lane):
            return False
        bucket = lane.bucket
        if bucket is None:
            return True
        wait_s = bucket.reserve()
        if wait_s <= 0:
            return True
        if wait_s > self._max_rate_wait_s:
            bucket.cancel()
            RATE_LIMITED.labels(channel=delivery.channel, action="deferred").inc()
            await self._store.defer(delivery.id,
                                    self._clock.now() + timedelta(seconds=wait_s))
            return False
        RATE_LIMITED.labels(channel=delivery.channel, action="waited").inc()
        await asyncio.sleep(wait_s)
        return not await self._held_by_breaker(delivery, lane)

    async def _held_by_breaker(self, delivery: Delivery, lane: _Lane) -> bool:
        """Hand the row back unattempted, due at the probe, if the breaker is open."""
        reopens_at: datetime | None = None if lane.breaker is None else lane.breaker.reopens_at
        if reopens_at is None:
            return False
        await self._store.defer(delivery.id, reopens_at)
        return True

    async def _attempt(self, delivery: Delivery) -> Outcome:
        channel = self._channels.get(delivery.channel)
        if channel is None:
            return Outcome(error=f"no adapter configured for channel '{delivery.channel}'",
                           dead_letter_reason="unconfigured")
        try:
            receipt = await asyncio.wait_for(channel.send(_outbound(delivery)),
                                             timeout=self._send_timeout_s)
        except DeliveryError as exc:
            return Outcome(error=str(exc), retryable=exc.retryable,
                           retry_after_s=exc.retry_after_s)
        except TimeoutError:
            return Outcome(error=f"send timed out after {self._send_timeout_s:g}s",
                           retryable=True)
        except Exception as exc:  # noqa: BLE001 - an adapter bug: logged, then retried
            _log.exception("dispatch.unexpected_error", delivery_id=delivery.id,
                           channel=delivery.channel)
            PIPELINE_ITEM_FAILURES.labels(stage="send", reason=type(exc).__name__).inc()
            return Outcome(error=f"unexpected {type(exc).__name__}: {exc}", retryable=True)
        return Outcome(receipt=receipt)

    async def _record(self, delivery: Delivery, outcome: Outcome) -> None:
        now = self._clock.now()
        log = _log.bind(delivery_id=delivery.id, channel=delivery.channel,
                        recipient=mask_address(delivery.recipient),
                        fingerprint=delivery.fingerprint, incident=delivery.incident_key,
                        attempts=delivery.attempts)
        if outcome.receipt is not None:
            await self._store.mark_sent(delivery.id, now, outcome.receipt)
            DELIVERIES.labels(channel=delivery.channel, result="sent").inc()
            if outcome.receipt.segments:
                SMS_SEGMENTS.labels(channel=delivery.channel).inc(outcome.receipt.segments)
            DISPATCH_LATENCY.labels(channel=delivery.channel).observe(
                max(0.0, (now - delivery.created_at).total_seconds()))
            log.info("delivery.sent", provider_id=outcome.receipt.provider_id)
            return
        # Bounded, one line: an adapter's text never lands whole in last_error.
        error = excerpt(outcome.error or "unknown error", limit=STORED_ERROR_CHARS)
        reason = outcome.dead_letter_reason
        if outcome.retryable:
            when = self._policy.next_attempt(delivery.attempts, now, delivery.deadline_at,
                                             outcome.retry_after_s, self._rng)
            if when is not None:
                await self._store.mark_retry(delivery.id, when, error, at=now)
                DELIVERIES.labels(channel=delivery.channel, result="retry").inc()
                # Provider errors often echo the address: masked here, not only at
                # rendering (router.logging's safety net).
                log.warning("delivery.retry", error=mask_text(error),
                            next_attempt_at=when.isoformat())
                return
            error = f"deadline exceeded after {delivery.attempts} attempts: {error}"
            reason = "deadline"
        fallbacks = await self._store.mark_failed(delivery.id, now, error, reason=reason)
        DELIVERIES.labels(channel=delivery.channel, result="failed").inc()
        DEAD_LETTERS.labels(channel=delivery.channel, reason=reason).inc()
        log.error("delivery.failed", error=mask_text(error), dead_letter_reason=reason,
                  fallback_ids=fallbacks or None)
        if fallbacks:
            for fallback in await asyncio.gather(
                    *(self._store.get_delivery(i) for i in fallbacks)):
                if fallback is not None:
                    FALLBACKS_PLANNED.labels(channel=delivery.channel,
                                             fallback=fallback.channel).inc()
            self.notify()


def _outbound(delivery: Delivery) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery.id,
        idempotency_key=delivery.idempotency_key,
        channel=delivery.channel,
        recipient=delivery.recipient,
        severity=delivery.severity,
        locale=delivery.locale,
        message=delivery.message,
        audience=delivery.audience,
    )
