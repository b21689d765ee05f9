"""The dispatcher: sends due outbox deliveries through their channel, with retries.

Loop: claim due deliveries with a lease (at most as many as free send slots), send each
concurrently (``asyncio.wait_for`` bounds every send), then record the outcome:

- success → ``mark_sent`` (written *after* the send: a crash mid-send resends, never
  suppresses);
- ``DeliveryError(retryable=True)``, a timeout or an unexpected exception (logged with
  its traceback) → ``mark_retry`` at the time the :class:`RetryPolicy` picks, or
  ``mark_failed`` "deadline exceeded after N attempts: <last error>" when the next try
  would pass the delivery's deadline;
- ``DeliveryError(retryable=False)`` or no adapter for the channel → ``mark_failed``.

``mark_failed`` makes the row a *dead letter* with a reason (``permanent``, ``deadline``
or ``unconfigured``), counted in ``tocsin_dead_letters``; in the same store transaction
the delivery's planned fallback (``route.fallback: {sms: email}``) becomes a new pending
delivery to the same contact. Replay dead letters with ``tocsin deliveries retry``.

Rate limits: a channel with a limit (``rate_limits``, sends per second) takes a token
from its :class:`TokenBucket` before each send and waits for it; when the wait would be
longer than the lease allows, the row is handed back (``defer``) to be claimed later,
without counting an attempt.

A delivery is always attempted at least once, even if it is claimed after its deadline
(e.g. the service was down): the deadline bounds retries, not the first try.

Claims made elsewhere: the scheduler claims the deliveries of a flush inside the flush's
own transaction (one fsync'ed transaction less on the alert's path) and hands them over
with :meth:`Dispatcher.offer`. Every claimer first reserves free send slots
(:meth:`Dispatcher.reserve`) and claims at most that many, so the dispatcher's own loop
and the scheduler together never hold more than ``concurrency`` leases in flight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog

from router.clock import Clock
from router.dispatch.channel import Channel
from router.dispatch.ratelimit import TokenBucket
from router.dispatch.retry import RetryPolicy
from router.errors import STORED_ERROR_CHARS, DeliveryError, excerpt
from router.masking import mask_address
from router.metrics import (
    DEAD_LETTERS,
    DELIVERIES,
    DISPATCH_LATENCY,
    FALLBACKS_PLANNED,
    OUTBOX_DEPTH,
    OUTBOX_STATUSES,
    RATE_LIMITED,
    SMS_SEGMENTS,
)
from router.models import Delivery, OutboundMessage, Receipt
from router.store.base import Store

__all__ = ["Dispatcher", "Outcome"]

_log = structlog.get_logger(__name__)

_GAUGE_REFRESH_S = 1.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: a receipt, or an error that is retryable or not."""

    receipt: Receipt | None = None
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    dead_letter_reason: str = "permanent"  # when failed for good without retrying


class Dispatcher:
    """Claims due deliveries and sends them, ``concurrency`` at a time."""

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
    ) -> None:
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
        self._poll_interval_s = poll_interval_s
        self._send_timeout_s = timeout_s
        self._drain_timeout_s = drain_timeout_s if drain_timeout_s is not None else timeout_s + 5
        self._rng = rng if rng is not None else random.Random()
        self._inflight: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots reserved by claims in progress (ours or the scheduler's)
        self._starved = False  # the loop found every free slot reserved: wake it on release
        self._draining = False  # the loop has stopped: nothing new is started
        self._wake = asyncio.Event()
        self._backlog = False
        self._stopping = False
        self._running = False
        self._stopped = asyncio.Event()
        self._gauges_refreshed_at = float("-inf")
        self._buckets = {channel: TokenBucket(rate) for channel, rate
                         in (rate_limits or {}).items() if rate > 0}
        # Longest wait for a token while holding a lease (the send must still fit in it).
        self._max_rate_wait_s = max(0.0, lease_s - timeout_s - 1.0)

    # -- control ----------------------------------------------------------------------

    def notify(self) -> None:
        """New deliveries were planned: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until :meth:`stop`; then let in-flight sends finish (bounded)."""
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                full = await self._claim_and_start()
                await self._refresh_gauges()
                if self._stopping:
                    break
                if full and len(self._inflight) < self._concurrency:
                    continue  # more may be due right now
                await self._wait()
        finally:
            await self._drain()
            self._running = False
            self._draining = False
            self._stopped.set()

    async def stop(self) -> None:
        """Stop claiming; wait (bounded) for in-flight sends, then return."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    @property
    def lease_s(self) -> float:
        """How long a claim leases a delivery (claimers outside the loop use it too)."""
        return self._lease_s

    def reserve(self) -> int:
        """Reserve every free send slot for one claim; return how many (0: claim nothing).

        The caller claims at most that many deliveries, then passes them to :meth:`offer`
        with the same count, which starts them and releases the reservation, whatever
        happened in between (pass an empty list when the claim failed). Nothing is
        reserved while the dispatcher is not running: a lease taken then would only be
        claimed again after it ran out.
        """
        if not self._running or self._stopping:
            return 0
        free = self._concurrency - len(self._inflight) - self._reserved
        if free <= 0:
            return 0
        self._reserved += free
        return free

    def offer(self, deliveries: Sequence[Delivery], reserved: int) -> None:
        """Send ``deliveries``, claimed elsewhere under a reservation of ``reserved`` slots."""
        self._release(deliveries, reserved)
        if reserved and len(deliveries) == reserved:
            self._backlog = True  # the claim was cut short by the slots: more may be due
            self._wake.set()

    async def dispatch_once(self) -> int:
        """Claim what is due now (up to ``concurrency``), send it all, return the count."""
        batch = await self._store.claim_due(self._clock.now(), self._concurrency, self._lease_s)
        await asyncio.gather(*(self._deliver(d) for d in batch))
        return len(batch)

    # -- loop internals ---------------------------------------------------------------

    async def _claim_and_start(self) -> bool:
        free = self.reserve()
        if free <= 0:
            self._starved = self._reserved > 0  # another claim holds the slots
            return False
        batch: list[Delivery] = []
        try:
            batch = await self._store.claim_due(self._clock.now(), free, self._lease_s)
        except Exception:  # noqa: BLE001 - logged; the next poll tries again
            _log.exception("dispatch.claim_failed")
            return False
        finally:
            self._release(batch, free)
        self._backlog = len(batch) == free
        return self._backlog

    def _release(self, deliveries: Sequence[Delivery], reserved: int) -> None:
        """Start the claimed deliveries and give back the ``reserved`` slots."""
        if len(deliveries) > reserved or reserved > self._reserved:
            raise ValueError(f"{len(deliveries)} deliveries for {reserved} slots "
                             f"({self._reserved} reserved)")
        self._reserved -= reserved
        if deliveries and self._draining:
            # Leased and not sent: claimed again when the lease runs out (as after a crash).
            _log.warning("dispatch.claimed_while_stopping", deliveries=len(deliveries))
        else:
            for delivery in deliveries:
                self._start(delivery)
        if self._starved and not self._reserved:
            self._starved = False
            self._wake.set()  # the loop found no free slot while they were reserved

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(delivery),
                                   name=f"tocsin-delivery-{delivery.id}")
        self._inflight.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._backlog:
            self._wake.set()  # a slot is free and more work is probably due

    async def _wait(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _drain(self) -> None:
        self._draining = True
        if not self._inflight:
            return
        pending = set(self._inflight)
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
        except Exception:  # noqa: BLE001 - a metric must not stop deliveries
            _log.exception("dispatch.gauge_refresh_failed")
            return
        for status in OUTBOX_STATUSES:
            OUTBOX_DEPTH.labels(status=status).set(counts[status])

    # -- one delivery -----------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            if not await self._take_token(delivery):
                return
            outcome = await self._attempt(delivery)
            await self._record(delivery, outcome)
        except Exception:  # noqa: BLE001 - the lease expires and the row is retried
            _log.exception("dispatch.record_failed", delivery_id=delivery.id)

    async def _take_token(self, delivery: Delivery) -> bool:
        """Wait for the channel's rate limit; False when the row was handed back."""
        bucket = self._buckets.get(delivery.channel)
        if bucket is None or delivery.channel not in self._channels:
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
                log.warning("delivery.retry", error=error, next_attempt_at=when.isoformat())
                return
            error = f"deadline exceeded after {delivery.attempts} attempts: {error}"
            reason = "deadline"
        fallbacks = await self._store.mark_failed(delivery.id, now, error, reason=reason)
        DELIVERIES.labels(channel=delivery.channel, result="failed").inc()
        DEAD_LETTERS.labels(channel=delivery.channel, reason=reason).inc()
        log.error("delivery.failed", error=error, dead_letter_reason=reason,
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
