"""The composition root: builds the store, rules, channels, sources, workers and the
HTTP app, and ``tocsin serve`` runs it until SIGTERM/SIGINT.

:func:`create_app` wires every resource as one aiohttp ``cleanup_ctx``, set up in this
order and torn down in reverse:

1. the store (opened from ``state_url`` unless the caller owns one);
2. the back-pressure decision and its sampler (decided before the first request);
3. the channels (through :mod:`adapters.registry`), then the dispatcher, the
   scheduler and the retention worker (``run_workers``);
4. the intake processor;
5. the rule reloader (SIGHUP, ``POST /-/reload``, the file watcher), then the instance
   heartbeat (this instance recorded in the store, rule sets compared with the others');
6. the Kafka source (``kafka.topics``) and the cluster-ingest publisher
   (``kafka.publish.topic``); their client library is loaded only then.

So on shutdown (after aiohttp stopped accepting and let in-flight requests finish) the
Kafka source commits what it handed off, the intake processor finishes its batch, the
dispatcher lets in-flight sends finish (bounded; rows not sent stay pending in the
outbox for the next start), then channels and the store close. A background worker that
dies stops the service with exit status 1 (:class:`router.workers.loop.Supervised`).
:mod:`router.http` holds the routes only; they read what is built here through the app
keys of :mod:`router.http.state`.

:func:`run_service` (``tocsin serve``): configure logging, load the rules (a rejected
rule set exits 1 with every positioned problem on stderr), lock a SQLite state file for
this process (another ``tocsin serve`` on it: exit 1 naming the file;
:mod:`router.store.sqlite.lock`), build the app, listen. On
SIGTERM or SIGINT (drain): ``/readyz`` turns 503, the listening socket closes,
in-flight requests get up to :data:`DRAIN_TIMEOUT_S` to finish, then the cleanup above
runs, exit status 0. SIGHUP reloads the rule files (:mod:`router.workers.reloader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Final, cast
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from adapters.registry import (
    SmtpSettings,
    build_channels,
    sns_inbound_client,
    sns_settings,
    webpush_settings,
)
from router import __version__
from router.acks import AckLinks
from router.audiences import export_contact_gauges
from router.backpressure import Backpressure
from router.bytecache import set_cache_bytes
from router.channel import Channel
from router.clock import Clock, SystemClock
from router.config import LaneConfig, LanesConfig, ServiceConfig
from router.errors import RuleError, StoreInUse
from router.flush_offload import set_offload_renders
from router.gctune import tune_gc
from router.http.auth import API_AUTH, ApiAuth, auth_warnings
from router.http.routes import add_routes
from router.http.server import HttpServer
from router.http.state import (
    ACK_LINKS,
    ACKNOWLEDGER,
    BACKPRESSURE,
    CLOCK,
    CONFIG,
    INSTANCE,
    KAFKA_PUBLISHER,
    KAFKA_SOURCE,
    PROCESSOR,
    RELOADER,
    RULES,
    SNS_INBOUND,
    STATE,
    STORE,
    RulesRef,
    ServiceState,
)
from router.http.webhook import LIMITS, large_bodies_ctx, webhook_limits
from router.instances import Identity, InstanceStatus
from router.logging import configure_logging, get_logger
from router.metrics import RULES_LAST_RELOAD, RULES_RELOAD_SUCCESS
from router.rules import RuleSet, load_rules
from router.rules.templates import RenderBudget, set_render_budget
from router.store import Store, lock_single_process, open_store
from router.workers.acks import AckService
from router.workers.backpressure import BackpressureSampler
from router.workers.dispatcher import Dispatcher, LaneSettings
from router.workers.instances import InstanceHeartbeat
from router.workers.intake import IntakeProcessor
from router.workers.loop import Supervised, Worker
from router.workers.reloader import LOGGED_WARNINGS, RuleReloader
from router.workers.retention import Prunes, RetentionWorker
from router.workers.retry import RetryPolicy
from router.workers.scheduler import Scheduler

if TYPE_CHECKING:
    from adapters.registry import SubscriptionStore

__all__ = [
    "DRAIN_TIMEOUT_S",
    "WORKER_STOP_TIMEOUT_S",
    "apply_limits",
    "build_ack_links",
    "build_service_channels",
    "channel_lanes",
    "channel_rate_limits",
    "create_app",
    "redact_url",
    "run_service",
    "smtp_settings",
    "store_kind",
]

#: How long in-flight HTTP requests may take to finish once draining started.
DRAIN_TIMEOUT_S: Final = 10.0
#: Bound on waiting for a background worker to stop after it was asked to.
WORKER_STOP_TIMEOUT_S: Final = 60.0

_log = get_logger("router.app")


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
    app = web.Application(client_max_size=config.webhook.max_body_bytes)
    app[CONFIG] = config
    # tocsin_contacts{audience,channel}: set now and after every successful reload.
    app[RULES] = RulesRef(rules, on_swap=[_contact_gauges])
    app[STATE] = state if state is not None else ServiceState()
    app[CLOCK] = clock if clock is not None else SystemClock()
    app[API_AUTH] = ApiAuth.from_config(config)  # every route checks its scope with it
    app[LIMITS] = webhook_limits(config.webhook)  # webhook.max_*: per-request bounds
    links = build_ack_links(config)
    if links is not None:  # acks.link_key: notices carry links, /ack/{token} answers them
        app[ACK_LINKS] = links
    app[INSTANCE] = InstanceStatus(Identity(
        instance_id=config.instance.resolved_id(), version=__version__,
        store=store_kind(config.state_url), started_at=app[CLOCK].now()))

    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_backpressure_ctx)  # backlog sampled: webhook 503, Kafka pause
    app.cleanup_ctx.append(large_bodies_ctx)  # large webhook bodies: slots and threads
    if run_workers:
        app.cleanup_ctx.append(_channels_ctx(channels))
        app.cleanup_ctx.append(_dispatcher_ctx)
        app.cleanup_ctx.append(_scheduler_ctx)  # incident timers → outbox
        app.cleanup_ctx.append(_retention_ctx)  # old history pruned (retention section)
    app.cleanup_ctx.append(_intake_ctx(run_workers))
    app.cleanup_ctx.append(_acks_ctx)  # answers (SMS, links, API, CLI) → incidents
    app.cleanup_ctx.append(_reloader_ctx)  # rule hot reload: file watcher + /-/reload
    if run_workers:
        app.cleanup_ctx.append(_instance_ctx)  # heartbeat, rule sets compared
    if run_workers:
        app.cleanup_ctx.append(_kafka_source_ctx)  # no-op without kafka.topics
    app.cleanup_ctx.append(_kafka_publisher_ctx)  # no-op without kafka.publish.topic
    app.cleanup_ctx.append(_sns_inbound_ctx)  # no-op without sns.inbound.enabled

    add_routes(app, public_metrics=config.api.public_metrics)
    return app


_CHANNELS: web.AppKey[Mapping[str, Channel]] = web.AppKey("channels")
_DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
_SCHEDULER_NOTIFY: web.AppKey[Callable[[], None]] = web.AppKey("scheduler_notify")


def _supervise(app: web.Application, worker: Worker, name: str) -> Supervised:
    """Run ``worker`` as a task; its unexpected end stops the service (exit status 1)."""
    state = app[STATE]
    return Supervised(worker, name, on_exit=lambda code: state.request_stop(exit_code=code),
                      stop_timeout_s=WORKER_STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def _running(app: web.Application, worker: Worker, name: str) -> AsyncIterator[None]:
    """One supervised worker: started on entry, stopped gracefully on exit."""
    running = _supervise(app, worker, name)
    try:
        yield
    finally:
        await running.stop()


def _contact_gauges(rules: RuleSet) -> None:
    export_contact_gauges(rules.audiences)


def _current_rules(app: web.Application) -> Callable[[], RuleSet]:
    """The rule set in force at each call (a reload swaps it between batches)."""
    ref = app[RULES]

    def current() -> RuleSet:
        if ref.current is None:
            raise RuntimeError("no rule set loaded")
        return ref.current

    return current


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


async def _backpressure_ctx(app: web.Application) -> AsyncIterator[None]:
    pressure = Backpressure(app[STORE], app[CONFIG].backpressure, clock=app[CLOCK])
    await pressure.sample()  # decided before the first request is accepted
    app[BACKPRESSURE] = pressure
    async with _running(app, BackpressureSampler(pressure), "backpressure"):
        yield


def _channels_ctx(
    given: Mapping[str, Channel] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
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
    config = app[CONFIG].dispatch
    dispatcher = Dispatcher(
        app[STORE],
        app[_CHANNELS],
        clock=app[CLOCK],
        policy=RetryPolicy(initial_s=config.backoff_initial_s, max_s=config.backoff_max_s),
        concurrency=config.concurrency,
        lease_s=config.lease_s,
        poll_interval_s=config.poll_interval_s,
        breaker_failures=config.breaker_failures,
        breaker_cooldown_s=config.breaker_cooldown_s,
        lanes=channel_lanes(app[CONFIG]),
    )
    app[_DISPATCHER] = dispatcher
    async with _running(app, dispatcher, "dispatcher"):
        yield


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    dispatcher = app.get(_DISPATCHER)
    scheduler = Scheduler(
        app[STORE],
        _current_rules(app),
        clock=app[CLOCK],
        deadline_s=config.dispatch.deadline_s,
        poll_interval_s=config.incidents.poll_interval_s,
        batch_size=config.incidents.batch_size,
        on_planned=dispatcher.notify if dispatcher is not None else None,
        dispatcher=dispatcher,  # a flush claims its deliveries and hands them over
        ack_links=app.get(ACK_LINKS),  # the links of notices asking for an answer
        lease_s=config.instance.claim_lease_s,
    )
    app[_SCHEDULER_NOTIFY] = scheduler.notify
    async with _running(app, scheduler, "scheduler"):
        yield


async def _acks_ctx(app: web.Application) -> AsyncIterator[None]:
    """The acknowledgement service the inbound SMS, link, API and CLI routes call (one
    the embedding caller put in the app before it started is kept)."""
    if ACKNOWLEDGER in app:
        yield
        return
    dispatcher = app.get(_DISPATCHER)
    app[ACKNOWLEDGER] = AckService(
        app[STORE], _current_rules(app), wake=app.get(_SCHEDULER_NOTIFY),
        on_planned=dispatcher.notify if dispatcher is not None else None,
        reply_deadline_s=app[CONFIG].dispatch.deadline_s)
    yield


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = RetentionWorker(cast("Prunes", app[STORE]), app[CONFIG].retention,
                             clock=app[CLOCK])
    async with _running(app, worker, "retention"):
        yield


def _intake_ctx(run: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        processor = IntakeProcessor(
            app[STORE],
            _current_rules(app),
            clock=app[CLOCK],
            deadline_s=config.dispatch.deadline_s,
            poll_interval_s=config.dispatch.poll_interval_s,
            on_planned=app.get(_SCHEDULER_NOTIFY),
            timer_scale=config.incidents.timer_scale,
            lease_s=config.instance.claim_lease_s,
        )
        app[PROCESSOR] = processor
        if not run:
            yield
            return
        async with _running(app, processor, "intake"):
            yield

    return ctx


async def _reloader_ctx(app: web.Application) -> AsyncIterator[None]:
    """The reloader over the app's rules holder, and its file watcher."""
    config = app[CONFIG]
    reloader = RuleReloader(config.rules, app[RULES],
                            poll_interval_s=config.rules_poll_interval_s)
    app[RELOADER] = reloader
    await reloader.prime()
    async with _running(app, reloader, "rules-watch"):
        yield


async def _instance_ctx(app: web.Application) -> AsyncIterator[None]:
    """This instance's heartbeat in the store and the rule-set comparison."""
    config = app[CONFIG].instance
    rules = _current_rules(app)
    heartbeat = InstanceHeartbeat(app[STORE], app[INSTANCE],
                                  rules_hash=lambda: rules().content_hash, clock=app[CLOCK],
                                  heartbeat_s=config.heartbeat_s,
                                  stale_after_s=config.stale_after_s)
    _log.info("instance", instance=app[INSTANCE].identity.instance_id,
              rules_hash=rules().content_hash)
    async with _running(app, heartbeat, "instances"):
        yield


async def _kafka_source_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Kafka consumer (no-op without ``kafka.topics``/``topic_pattern``).

    Set up after the intake processor (so torn down before it): at shutdown it finishes
    its batch, commits what was handed off and leaves the group.
    """
    config = app[CONFIG].kafka
    if config is None or not config.consumer_enabled:
        yield  # no Kafka source: its client library is never loaded
        return
    from adapters.registry import KafkaSource  # lazy: loads the Kafka client (PEP 562)

    source = KafkaSource(config, app[STORE], clock=app[CLOCK],
                         on_handoff=app[PROCESSOR].notify, backpressure=app[BACKPRESSURE])
    app[KAFKA_SOURCE] = source
    async with _running(app, source, "kafka"):
        yield


async def _kafka_publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cluster-ingest producer (no-op without ``kafka.publish.topic``): the webhook
    then publishes to Kafka (:func:`router.http.webhook.publish_webhook`) and writes
    nothing to the local intake."""
    config = app[CONFIG].kafka
    if config is None or config.publish.topic is None:
        yield  # no cluster ingest: its client library is never loaded
        return
    from adapters.registry import KafkaPublisher  # lazy: loads the Kafka client (PEP 562)

    publisher = KafkaPublisher(config)
    await publisher.start()
    app[KAFKA_PUBLISHER] = publisher
    _log.info("cluster ingest: webhook alerts are published to kafka", topic=publisher.topic)
    try:
        yield
    finally:
        await publisher.close()


def build_ack_links(config: ServiceConfig) -> AckLinks | None:
    """The acknowledgement links of the ``acks`` section (None: no link key, links off)."""
    key = config.acks.key()
    if key is None or config.acks.public_url is None:
        return None
    return AckLinks(public_url=config.acks.public_url, key=key, ttl_s=config.acks.link_ttl)


async def _sns_inbound_ctx(app: web.Application) -> AsyncIterator[None]:
    """The certificate fetcher and subscription confirmer of ``POST /webhook/sns``
    (no-op without ``sns.inbound.enabled``: the route then answers 404)."""
    sns = app[CONFIG].sns
    if sns is None or not sns.inbound.enabled:
        yield
        return
    client = sns_inbound_client(sns.inbound)
    app[SNS_INBOUND] = client
    _log.info("sms replies through sns enabled", topics=len(sns.inbound.topic_arns))
    try:
        yield
    finally:
        await client.close()


# -- channels: the outbound adapters the config enables -------------------------------


def smtp_settings(config: ServiceConfig) -> SmtpSettings:
    """The SMTP channel settings from the ``smtp`` section (secret unwrapped here only)."""
    smtp = config.smtp
    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        security=smtp.security,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password is not None else None,
        from_address=smtp.from_address,
        timeout_s=smtp.timeout_s,
        ca_file=smtp.ca_file,
        pool_size=smtp.pool_size,
        pool_idle_s=smtp.pool_idle_s,
    )


def build_service_channels(config: ServiceConfig, *,
                           subscriptions: SubscriptionStore | None = None) -> dict[str, Channel]:
    """Every outbound channel the config enables, through the adapter registry.

    ``push`` needs ``subscriptions`` (the store) as well as the ``webpush`` section.
    """
    return build_channels(
        smtp_settings(config),
        sns=sns_settings(config.sns) if config.sns is not None else None,
        webpush=webpush_settings(config.webpush) if config.webpush is not None else None,
        subscriptions=subscriptions,
    )


def channel_rate_limits(config: ServiceConfig) -> dict[str, float]:
    """Sends per second per channel (0: unlimited) for the dispatcher's token buckets."""
    limits: dict[str, float] = {}
    if config.sns is not None:
        limits["sms"] = config.sns.rate_per_s
        limits["topic"] = config.sns.topic_rate_per_s
    if config.webpush is not None:
        limits["push"] = config.webpush.rate_per_s
    return limits


def channel_lanes(config: ServiceConfig) -> dict[str, LaneSettings]:
    """Every channel's dispatch lane: ``dispatch.lanes.<channel>`` over the ``dispatch``
    defaults, the rate limit of the channel's own section when the lane sets none."""
    dispatch = config.dispatch
    rates = channel_rate_limits(config)
    lanes: dict[str, LaneSettings] = {}
    for channel in LanesConfig.model_fields:
        lane: LaneConfig = getattr(dispatch.lanes, channel)
        lanes[channel] = LaneSettings(
            concurrency=lane.concurrency if lane.concurrency is not None
            else dispatch.concurrency,
            rate_per_s=lane.rate_per_s if lane.rate_per_s is not None
            else rates.get(channel, 0.0),
            burst=lane.burst,
            breaker_failures=lane.breaker_failures if lane.breaker_failures is not None
            else dispatch.breaker_failures,
            breaker_cooldown_s=lane.breaker_cooldown_s if lane.breaker_cooldown_s is not None
            else dispatch.breaker_cooldown_s,
        )
    return lanes


def store_kind(url: str) -> str:
    """The kind of store a state URL names (its scheme): ``sqlite``, ``postgresql``."""
    scheme = url.partition(":")[0].partition("+")[0].lower()
    return "postgresql" if scheme == "postgres" else scheme


def redact_url(url: str) -> str:
    """Drop a password from a URL's user info before logging it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def apply_limits(config: ServiceConfig) -> None:
    """Apply the ``memory`` and ``templates`` sections (process-wide settings)."""
    set_cache_bytes(config.memory.cache_bytes)
    templates = config.templates
    set_render_budget(RenderBudget(time_s=templates.render_budget_s,
                                   max_output_chars=templates.max_output_chars))
    set_offload_renders(templates.offload_renders)


async def run_service(config: ServiceConfig, *, ready: asyncio.Event | None = None) -> int:
    """Run Tocsin until asked to stop; return the process exit status (0 ok, 1 failure).

    ``ready`` (tests, embedding) is set once the socket listens and workers run.
    """
    configure_logging(config.log.level, config.log.format)
    apply_limits(config)
    try:
        rules = load_rules(config.rules)
    except RuleError as exc:
        RULES_RELOAD_SUCCESS.set(0)
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        _log.error("rule set rejected", problems=len(exc.problems), paths=config.rules)
        return 1
    RULES_RELOAD_SUCCESS.set(1)
    RULES_LAST_RELOAD.set(time.time())
    for warning in rules.warnings[:LOGGED_WARNINGS]:
        _log.warning("rule warning", problem=str(warning))
    if len(rules.warnings) > LOGGED_WARNINGS:  # thousands of bad rows in a customer list
        _log.warning("more rule warnings not logged (tocsin rules check lists them)",
                     count=len(rules.warnings) - LOGGED_WARNINGS)

    try:  # one service process per SQLite file; PostgreSQL is shared by several
        lock = lock_single_process(config.state_url)
    except StoreInUse as exc:
        sys.stderr.write(f"tocsin serve: {exc}\n")
        _log.error("state store in use", error=str(exc))
        return 1
    try:
        return await _serve(config, rules, ready)
    finally:
        if lock is not None:
            lock.release()


async def _serve(config: ServiceConfig, rules: RuleSet, ready: asyncio.Event | None) -> int:
    """Build the app over the loaded rules, listen, run until asked to stop."""
    tune_gc()  # after the rules are loaded: they are frozen with the rest
    state = ServiceState()
    # Channels are built by the app once the store is open: Web Push needs the store's
    # subscriptions.
    app = create_app(config, rules=rules, state=state)
    # Header timeout, connection cap, keep-alive limits: router.http.server.
    server = HttpServer(app, config.webhook, shutdown_timeout_s=DRAIN_TIMEOUT_S)
    host, port = config.listen_address
    try:
        await server.start(host, port)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — any startup failure: log it, clean up, exit 1
        _log.error("startup failed", error=str(exc), error_type=type(exc).__name__,
                   listen=config.listen)
        await server.stop()
        return 1

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, state, signum)
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER].request_reload, "SIGHUP")
    _log.info(
        "tocsin started",
        version=__version__,
        listen=config.listen,
        rule_files=[str(path) for path in rules.source_files],
        state_url=redact_url(config.state_url),
        instance=app[INSTANCE].identity.instance_id,
        smtp=f"{config.smtp.host}:{config.smtp.port} ({config.smtp.security})",
        webhook_auth=_auth_mode(config),
        api_tokens=[token.name for token in config.api.tokens],
    )
    for auth_warning in auth_warnings(config):
        _log.warning(auth_warning)
    if ready is not None:
        ready.set()
    try:
        await state.stop_requested.wait()
    finally:
        state.draining = True
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        _log.info("draining: no new connections, finishing in-flight work")
        await server.stop()
        _log.info("tocsin stopped", exit_code=state.exit_code)
    return state.exit_code


def _on_signal(state: ServiceState, signum: int) -> None:
    _log.info("shutdown requested", signal=signal.Signals(signum).name)
    state.draining = True
    state.request_stop()


def _auth_mode(config: ServiceConfig) -> str:
    modes = [name for name, on in (("bearer", config.webhook.bearer_token is not None),
                                   ("basic", config.webhook.basic_auth is not None)) if on]
    return "+".join(modes) if modes else "none"
