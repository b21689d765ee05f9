"""``tocsin serve``: wire everything together and run until SIGTERM/SIGINT.

Startup: configure logging, load the rules (a rejected rule set exits 1 with every
positioned problem on stderr), build the channels, start the HTTP app (whose cleanup
contexts open the store and start the intake processor and the dispatcher), listen.

Shutdown on SIGTERM or SIGINT (drain): ``/readyz`` turns 503, the listening socket
closes, in-flight requests get up to :data:`DRAIN_TIMEOUT_S` to finish, the intake
processor finishes its batch, the dispatcher lets in-flight sends finish (bounded; rows
not sent stay pending in the outbox for the next start), channels and the store close,
exit status 0. A background worker that dies stops the service with exit status 1.
SIGHUP reloads the rule files (see :mod:`router.workers.reloader`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from adapters.registry import SmtpSettings, build_channels, sns_settings, webpush_settings
from router import __version__
from router.channel import Channel
from router.config import LaneConfig, LanesConfig, ServiceConfig
from router.errors import RuleError
from router.gctune import tune_gc
from router.http import ServiceState, create_app
from router.http.auth import auth_warnings
from router.http.reload import RELOADER
from router.logging import configure_logging, get_logger
from router.metrics import RULES_LAST_RELOAD, RULES_RELOAD_SUCCESS
from router.rules import load_rules
from router.workers.dispatcher import LaneSettings

if TYPE_CHECKING:
    from adapters.registry import SubscriptionStore

__all__ = ["DRAIN_TIMEOUT_S", "build_service_channels", "channel_lanes", "channel_rate_limits",
           "redact_url", "run_service", "smtp_settings"]

#: How long in-flight HTTP requests may take to finish once draining started.
DRAIN_TIMEOUT_S: Final = 10.0

_log = get_logger("router.service")


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


async def run_service(config: ServiceConfig, *, ready: asyncio.Event | None = None) -> int:
    """Run Tocsin until asked to stop; return the process exit status (0 ok, 1 failure).

    ``ready`` (tests, embedding) is set once the socket listens and workers run.
    """
    configure_logging(config.log.level, config.log.format)
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
    for warning in rules.warnings:
        _log.warning("rule warning", problem=str(warning))

    tune_gc()  # after the rules are loaded: they are frozen with the rest
    state = ServiceState()
    # Channels are built by the app once the store is open: Web Push needs the store's
    # subscriptions.
    app = create_app(config, rules=rules, state=state)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=DRAIN_TIMEOUT_S
    )
    host, port = config.listen_address
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — any startup failure: log it, clean up, exit 1
        _log.error("startup failed", error=str(exc), error_type=type(exc).__name__,
                   listen=config.listen)
        await runner.cleanup()
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
        await runner.cleanup()
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
