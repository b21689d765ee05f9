"""The aiohttp application: routes, typed state, and one ``cleanup_ctx`` per resource.

Resources are set up in this order and torn down in reverse: the store, the
back-pressure sampler, the channels, the dispatcher task, the intake processor task.
So on shutdown (after aiohttp stopped accepting and let in-flight requests finish) the
intake processor finishes its batch first, then the dispatcher lets in-flight sends
finish, then channels and the store close. Rows not yet sent stay pending in the
outbox for the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import web

from router.clock import Clock, SystemClock
from router.config import ServiceConfig
from router.http.api import handle_deliveries, handle_intake
from router.http.auth import API_AUTH, ApiAuth, requires
from router.http.incidents_api import add_incident_routes
from router.http.probes import handle_healthz, handle_metrics, handle_readyz
from router.http.push_api import add_push_routes
from router.http.reload import handle_reload, reloader_ctx
from router.http.responses import add_unmatched_route, json_errors
from router.http.state import (
    BACKPRESSURE,
    CLOCK,
    CONFIG,
    PROCESSOR,
    RULES,
    STATE,
    STORE,
    RulesRef,
    ServiceState,
)
from router.http.webhook import handle_alertmanager
from router.logging import get_logger
from router.store import Store, open_store

if TYPE_CHECKING:
    from router.dispatch.channel import Channel
    from router.dispatch.dispatcher import Dispatcher
    from router.rules import RuleSet

__all__ = ["WORKER_STOP_TIMEOUT_S", "create_app"]

#: Bound on waiting for a background worker to stop after it was asked to.
WORKER_STOP_TIMEOUT_S: Final = 60.0

_log = get_logger("router.http.app")


def create_app(
    config: ServiceConfig,
    *,
    rules: RuleSet,
    store: Store | None = None,
    channels: Mapping[str, Channel] | None = None,
    clock: Clock | None = None,
    state: ServiceState | None = None,
    run_workers: bool = True,
) -> web.Application:
    """Build the HTTP app and the lifecycle of everything it needs.

    ``store``: an already started store the caller owns; by default the app opens
    ``config.state_url`` at startup and closes it at cleanup. ``channels``: the outbound
    channels (default: built from ``config`` by :mod:`adapters.registry`), closed at
    cleanup. ``run_workers=False`` runs neither the intake processor nor the dispatcher
    (HTTP-only tests: accepted alerts stay in the intake log).
    """
    # No middleware (see router.http.responses): the webhook answers its own errors,
    # every other route is wrapped in json_errors, unmatched requests get a JSON 404/405.
    app = web.Application(client_max_size=config.webhook.max_body_bytes)
    app[CONFIG] = config
    app[RULES] = RulesRef(rules)
    app[STATE] = state if state is not None else ServiceState()
    app[CLOCK] = clock if clock is not None else SystemClock()
    app[API_AUTH] = ApiAuth.from_config(config)  # every route checks its scope with it

    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_backpressure_ctx)  # backlog sampled: webhook 503, Kafka pause
    if run_workers:
        app.cleanup_ctx.append(_channels_ctx(channels))
        app.cleanup_ctx.append(_dispatcher_ctx)
        app.cleanup_ctx.append(_scheduler_ctx)  # incident timers → outbox
        app.cleanup_ctx.append(_retention_ctx)  # old history pruned (retention section)
    app.cleanup_ctx.append(_intake_ctx(run_workers))
    app.cleanup_ctx.append(reloader_ctx)  # rule hot reload: file watcher + /-/reload
    if run_workers:
        app.cleanup_ctx.append(_kafka_source_ctx)  # no-op without kafka.topics
    app.cleanup_ctx.append(_kafka_publisher_ctx)  # no-op without kafka.publish.topic

    # Every route needs a scope (router.http.auth) but the probes; tests/http/
    # test_route_scopes.py fails for a route left out of its table.
    app.router.add_post("/webhook/alertmanager", handle_alertmanager)  # ingest, in-handler
    app.router.add_get("/api/v1/deliveries", json_errors(requires("read", handle_deliveries)))
    app.router.add_get("/api/v1/intake", json_errors(requires("read", handle_intake)))
    metrics = handle_metrics if config.api.public_metrics else requires("read", handle_metrics)
    app.router.add_get("/metrics", json_errors(metrics))
    app.router.add_get("/healthz", json_errors(handle_healthz))  # open: liveness probe
    app.router.add_get("/readyz", json_errors(handle_readyz))  # open: readiness probe
    add_incident_routes(app)  # /api/v1/incidents, /api/v1/incidents/{id}: read
    add_push_routes(app)  # /api/v1/push/subscriptions (404 without a webpush section)
    app.router.add_post("/-/reload", json_errors(requires("operate", handle_reload)))
    add_unmatched_route(app)  # last: JSON 404 / 405 for whatever no route above takes
    return app


_CHANNELS: web.AppKey[Mapping[str, Channel]] = web.AppKey("channels")
_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")


def _store_ctx(
    given: Store | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[STORE] = given
            yield
            return
        store = open_store(app[CONFIG].state_url)
        await store.start()
        app[STORE] = store
        _log.info("state store open")
        try:
            yield
        finally:
            await store.close()
            _log.info("state store closed")

    return ctx


def _channels_ctx(
    given: Mapping[str, Channel] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from router.service import build_service_channels  # lazy: service imports this module

        channels = (given if given is not None
                    else build_service_channels(app[CONFIG], subscriptions=app[STORE]))
        app[_CHANNELS] = channels
        try:
            yield
        finally:
            for name, channel in channels.items():
                try:
                    async with asyncio.timeout(WORKER_STOP_TIMEOUT_S):
                        await channel.close()
                except TimeoutError:
                    _log.warning("channel close timed out", channel=name)

    return ctx


async def _dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    from router.dispatch.dispatcher import Dispatcher
    from router.dispatch.retry import RetryPolicy
    from router.service import channel_lanes  # lazy: service imports this module

    config = app[CONFIG].dispatch
    dispatcher = Dispatcher(
        app[STORE],
        app[_CHANNELS],
        clock=app[CLOCK],
        policy=RetryPolicy(
            initial_s=config.backoff_initial_s,
            max_s=config.backoff_max_s,
        ),
        concurrency=config.concurrency,
        lease_s=config.lease_s,
        poll_interval_s=config.poll_interval_s,
        breaker_failures=config.breaker_failures,
        breaker_cooldown_s=config.breaker_cooldown_s,
        lanes=channel_lanes(app[CONFIG]),
    )
    app[_DISPATCHER] = dispatcher
    worker = _Worker(app, "dispatcher", dispatcher.run())
    try:
        yield
    finally:
        await worker.stop(dispatcher.stop)


_SCHEDULER_NOTIFY: web.AppKey[Callable[[], None]] = web.AppKey("scheduler_notify")


async def _backpressure_ctx(app: web.Application) -> AsyncIterator[None]:
    from router.backpressure import Backpressure

    pressure = Backpressure(app[STORE], app[CONFIG].backpressure, clock=app[CLOCK])
    await pressure.sample()  # decided before the first request is accepted
    app[BACKPRESSURE] = pressure
    worker = _Worker(app, "backpressure", pressure.run())
    try:
        yield
    finally:
        await worker.stop(pressure.stop)


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    from router.scheduler import Scheduler

    ref = app[RULES]

    def current_rules() -> RuleSet:
        if ref.current is None:
            raise RuntimeError("no rule set loaded")
        return ref.current

    config = app[CONFIG]
    dispatcher = app.get(_DISPATCHER)
    scheduler = Scheduler(
        app[STORE],
        current_rules,
        clock=app[CLOCK],
        deadline_s=config.dispatch.deadline_s,
        poll_interval_s=config.incidents.poll_interval_s,
        batch_size=config.incidents.batch_size,
        on_planned=dispatcher.notify if dispatcher is not None else None,
        dispatcher=dispatcher,  # a flush claims its deliveries and hands them over
    )
    app[_SCHEDULER_NOTIFY] = scheduler.notify
    worker = _Worker(app, "scheduler", scheduler.run())
    try:
        yield
    finally:
        await worker.stop(scheduler.stop)


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    from router.retention import Prunes, RetentionWorker

    worker_obj = RetentionWorker(cast("Prunes", app[STORE]), app[CONFIG].retention,
                                 clock=app[CLOCK])
    worker = _Worker(app, "retention", worker_obj.run())
    try:
        yield
    finally:
        await worker.stop(worker_obj.stop)


def _intake_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        from router.intake import IntakeProcessor

        ref = app[RULES]

        def current_rules() -> RuleSet:
            if ref.current is None:
                raise RuntimeError("no rule set loaded")
            return ref.current

        dispatch = app[CONFIG].dispatch
        processor = IntakeProcessor(
            app[STORE],
            current_rules,
            clock=app[CLOCK],
            deadline_s=dispatch.deadline_s,
            poll_interval_s=dispatch.poll_interval_s,
            on_planned=app.get(_SCHEDULER_NOTIFY),
            timer_scale=app[CONFIG].incidents.timer_scale,
        )
        app[PROCESSOR] = processor
        if not run:
            yield
            return
        worker = _Worker(app, "intake", processor.run())
        try:
            yield
        finally:
            await worker.stop(processor.stop)

    return ctx


async def _kafka_source_ctx(app: web.Application) -> AsyncIterator[None]:
    kafka = app[CONFIG].kafka
    if kafka is None or not kafka.consumer_enabled:
        yield  # no Kafka source: its client library is never loaded
        return
    from router.ingest_kafka import build_kafka_source  # lazy: it imports router.http

    source = build_kafka_source(app)
    if source is None:
        yield
        return
    worker = _Worker(app, "kafka", source.run())
    try:
        yield
    finally:
        await worker.stop(source.stop)


async def _kafka_publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    kafka = app[CONFIG].kafka
    if kafka is None or kafka.publish.topic is None:
        yield  # no cluster ingest: its client library is never loaded
        return
    from router.ingest_kafka import kafka_publisher_ctx  # lazy: it imports router.http

    async for _ in kafka_publisher_ctx(app):
        yield


class _Worker:
    """A background task whose unexpected end (crash or early return) stops the service."""

    def __init__(self, app: web.Application, name: str, work: Coroutine[Any, Any, None]) -> None:
        self.name = name
        self._state = app[STATE]
        self._stopping = False
        self.task: asyncio.Task[None] = asyncio.create_task(work, name=f"tocsin-{name}")
        self.task.add_done_callback(self._done)

    def _done(self, finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        error = finished.exception()
        if error is not None:
            _log.error("background worker crashed", worker=self.name, error=repr(error))
            self._state.request_stop(exit_code=1)
        elif not self._stopping:
            _log.error("background worker exited unexpectedly", worker=self.name)
            self._state.request_stop(exit_code=1)

    async def stop(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Call the worker's own ``stop()`` and wait for its task, bounded."""
        self._stopping = True
        try:
            async with asyncio.timeout(WORKER_STOP_TIMEOUT_S):
                await stop()
                await asyncio.shield(self.task)
        except TimeoutError:
            _log.warning("worker did not stop in time; cancelling", worker=self.name)
            self.task.cancel()
        except asyncio.CancelledError:
            self.task.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 — already logged by the done callback
            _log.debug("worker ended with an error", worker=self.name, error=repr(exc))
