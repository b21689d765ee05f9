"""``POST /webhook/alertmanager``: authenticate, bound, parse, persist, then answer.

The answer 200 means the alerts are durably in the intake log (``append_intake``
returned); routing happens after, driven by the intake rows. Client mistakes get a 4xx
with a JSON error naming the problem and where it is; a store failure gets 503 with
``Retry-After`` so that Alertmanager retries (it retries 5xx, not 4xx), and so does a
backlog over a ``backpressure`` bound (:mod:`router.backpressure`; checked before the
body is read). Nothing is persisted for a rejected request. A 5xx is never the
client's fault: a body that cannot be decoded (``Content-Encoding`` that does not
match it), nested too deep, with a time out of range, or over a ``webhook.max_*`` limit
(413 naming the limit) is a 4xx; a body not complete within ``webhook.body_timeout_s`` gets 408.

Large bodies: a body over ``webhook.parse_thread_bytes`` (256 KiB; 10,000 alerts are
~4.4 MB) is parsed in a worker thread, so the event loop keeps answering other requests
meanwhile (pydantic still holds the GIL while it validates, about half of the parse;
building the records and their fingerprints runs beside the loop). At most
``webhook.max_large_bodies`` such requests read and parse their body at once (the others
wait for a slot before their body is read): 1,024 connections of 16 MiB bodies are never
all held in memory. A request that may be large is one whose ``Content-Length`` passes
the threshold, or that has none (chunked) or a ``Content-Encoding`` (the decoded size is
unknown until read). ``tocsin_webhook_large_bodies{state}`` shows the slots in use and
the requests waiting.

Content-Type: ``application/json`` (any parameters, e.g. ``charset=utf-8``) and
``application/*+json`` are accepted; a request without Content-Type is accepted when its
body parses (some scripts and proxies drop the header); any other type gets 415.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Final

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError

from adapters.registry import ALERTMANAGER_SOURCE as SOURCE
from adapters.registry import WebhookLimits, WebhookPayloadError, count_alerts, parse_webhook
from router.config import WebhookConfig
from router.http.auth import API_AUTH
from router.http.responses import internal_error, json_error
from router.http.state import BACKPRESSURE, CLOCK, CONFIG, KAFKA_PUBLISHER, PROCESSOR, STORE
from router.logging import get_logger
from router.metrics import (
    ALERTS_RECEIVED,
    KAFKA_PUBLISHED,
    WEBHOOK_LARGE_BODIES,
    WEBHOOK_REJECTED,
)
from router.models import IntakeRecord

if TYPE_CHECKING:
    from adapters.registry import KafkaPublisher

__all__ = ["LARGE_BODIES", "LIMITS", "PUBLISH_RETRY_AFTER_S", "RETRY_AFTER_S",
           "LargeBodies", "handle_alertmanager", "large_bodies_ctx", "publish_webhook",
           "webhook_limits"]

LIMITS: web.AppKey[WebhookLimits] = web.AppKey("webhook_limits")
#: Seconds a sender is asked to wait when the store cannot take the alerts.
RETRY_AFTER_S: Final = 5
#: Seconds a sender is asked to wait when the Kafka broker did not acknowledge.
PUBLISH_RETRY_AFTER_S: Final = 5

_log = get_logger("router.http.webhook")
_ACCEPTED = ALERTS_RECEIVED.labels(source=SOURCE, result="accepted")
_REJECTED = ALERTS_RECEIVED.labels(source=SOURCE, result="rejected")
_UNAVAILABLE = ALERTS_RECEIVED.labels(source=SOURCE, result="unavailable")
#: What Alertmanager sends: compared as a string first, parsed only when it differs.
_JSON: Final = "application/json"


def _reject(
    status: int,
    reason: str,
    error: str,
    *,
    location: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    alerts: int = 0,
) -> web.Response:
    WEBHOOK_REJECTED.labels(status=str(status), reason=reason).inc()
    if alerts:
        _REJECTED.inc(alerts)
    return json_error(status, error, location=location, headers=headers)


class LargeBodies:
    """The slots and the worker threads of bodies over ``webhook.parse_thread_bytes``.

    ``slots`` bounds the requests that read and parse such a body at once (memory); each
    parses in one of as many threads of its own (not the loop's default executor, which
    resolves host names for the channels).
    """

    def __init__(self, config: WebhookConfig) -> None:
        self.threshold = config.parse_thread_bytes
        self.limit = config.max_large_bodies
        self._slots = asyncio.Semaphore(self.limit)
        self._executor = ThreadPoolExecutor(max_workers=self.limit,
                                            thread_name_prefix="tocsin-webhook-parse")
        self.active = 0
        self.waiting = 0

    def may_be_large(self, request: web.Request) -> bool:
        """True when the body may pass the threshold once read (see the module docstring)."""
        length = request.content_length
        if length is None or length > self.threshold:
            return True
        encoding = request.headers.get(hdrs.CONTENT_ENCODING)
        return encoding is not None and encoding.strip().lower() != "identity"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_large_bodies`` slots (wait for one first)."""
        self.waiting += 1
        self._gauge()
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        self._gauge()
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()
            self._gauge()

    async def parse(self, body: bytes, *, received_at: datetime,
                    limits: WebhookLimits) -> list[IntakeRecord]:
        """:func:`adapters.registry.parse_webhook` in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: parse_webhook(body, received_at=received_at, limits=limits))

    def close(self) -> None:
        """Stop the worker threads (after the parses under way)."""
        self._executor.shutdown(wait=True)

    def _gauge(self) -> None:
        WEBHOOK_LARGE_BODIES.labels(state="active").set(self.active)
        WEBHOOK_LARGE_BODIES.labels(state="waiting").set(self.waiting)


LARGE_BODIES: web.AppKey[LargeBodies] = web.AppKey("webhook_large_bodies")


async def large_bodies_ctx(app: web.Application) -> AsyncIterator[None]:
    """The app's :class:`LargeBodies`, its threads stopped at cleanup."""
    gate = LargeBodies(app[CONFIG].webhook)
    app[LARGE_BODIES] = gate
    try:
        yield
    finally:
        gate.close()


def webhook_limits(config: WebhookConfig) -> WebhookLimits:
    """The payload limits of ``webhook.max_alerts`` / ``max_labels`` / ``max_*_bytes``."""
    return WebhookLimits(
        max_alerts=config.max_alerts,
        max_labels=config.max_labels,
        max_label_bytes=config.max_label_bytes,
        max_annotation_bytes=config.max_annotation_bytes,
    )


def _json_content_type(request: web.Request) -> bool:
    mime = request.content_type
    if mime == "application/json":
        return True
    return mime.startswith("application/") and mime.endswith("+json")


async def handle_alertmanager(request: web.Request) -> web.Response:
    """Accept one Alertmanager webhook notification (see the module docstring).

    The route has no middleware around it (the hot path of ingest): every outcome,
    an unexpected error included, is answered here as JSON.
    """
    try:
        return await _handle(request)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 — last resort: logged with traceback, answered 500
        return internal_error(request)


async def _handle(request: web.Request) -> web.Response:
    app = request.app
    auth = app[API_AUTH]
    if auth.enabled:  # checked here, not in a middleware: the hot path of ingest
        denied = auth.check(request.headers.get(hdrs.AUTHORIZATION), "ingest")
        if denied is not None:
            return _reject(denied.status, denied.reason, denied.error, headers=denied.headers)
    pressure = app[BACKPRESSURE]
    if (bound := pressure.engaged) is not None:  # the backlog is over a bound: retry later
        return _reject(503, "backpressure", bound.message(),
                       headers=[(hdrs.RETRY_AFTER, pressure.retry_after)])

    webhook = app[CONFIG].webhook
    limit = webhook.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:
        return _reject(413, "too_large", _too_large(length, limit))
    content_type = request.headers.get(hdrs.CONTENT_TYPE)
    if content_type is not None and content_type != _JSON and not _json_content_type(request):
        return _reject(
            415,
            "unsupported_media_type",
            f"unsupported Content-Type {request.content_type!r}: send application/json",
        )
    gate = app[LARGE_BODIES]
    if gate.may_be_large(request):
        async with gate.slot():  # bounded: at most max_large_bodies held at once
            return await _read_and_accept(request, gate)
    return await _read_and_accept(request, None)


async def _read_and_accept(request: web.Request, gate: LargeBodies | None) -> web.Response:
    """Read the body, parse it (in a worker thread when large), persist, answer (a large
    body holds its slot throughout: the body and its records stay in memory until then)."""
    app = request.app
    webhook = app[CONFIG].webhook
    limit = webhook.max_body_bytes
    try:
        async with asyncio.timeout(webhook.body_timeout_s):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _reject(413, "too_large", _too_large(None, limit))
    except TimeoutError:
        response = _reject(408, "body_timeout", "the request body was not received within "
                           f"{webhook.body_timeout_s:g} s (webhook.body_timeout_s)")
        response.force_close()
        return response
    except RequestPayloadError:  # e.g. Content-Encoding: gzip on a body that is not gzip
        encoding = request.headers.get(hdrs.CONTENT_ENCODING)
        words = (f"the body cannot be decoded as Content-Encoding {encoding!r}" if encoding
                 else "the body could not be read (malformed chunked encoding)")
        response = _reject(400, "bad_encoding", words)
        response.force_close()
        return response

    received_at = app[CLOCK].now()
    try:
        if gate is not None and len(body) > gate.threshold:
            records = await gate.parse(body, received_at=received_at, limits=app[LIMITS])
        else:
            records = parse_webhook(body, received_at=received_at, limits=app[LIMITS])
    except WebhookPayloadError as exc:
        if not body.strip():  # checked only here: the accepted path never copies the body
            return _reject(400, "malformed_json", "the body is empty: expected a JSON object")
        return _reject(
            exc.status, exc.reason, str(exc), location=exc.location, alerts=count_alerts(body)
        )

    publisher = app.get(KAFKA_PUBLISHER)
    if publisher is not None:  # cluster ingest: Kafka is the intake log (docs/kafka.md)
        return await publish_webhook(publisher, body, records)

    try:
        await app[STORE].append_intake(records)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — any store failure is answered 503 and logged
        _log.error("intake write failed", error=str(exc), error_type=type(exc).__name__,
                   alerts=len(records))
        WEBHOOK_REJECTED.labels(status="503", reason="store_unavailable").inc()
        _UNAVAILABLE.inc(len(records))
        return json_error(
            503,
            "the state store is unavailable; the alerts were not accepted, retry later",
            headers=[(hdrs.RETRY_AFTER, str(RETRY_AFTER_S))],
        )

    app[PROCESSOR].notify()
    _ACCEPTED.inc(len(records))
    return _accepted(len(records))


def _accepted(count: int) -> web.Response:
    # Pre-encoded body: this is the hot path of ingest (see bench/ingest_p2.py).
    return web.Response(
        body=b'{"status":"success","accepted":%d}' % count, content_type="application/json"
    )


def _too_large(length: int | None, limit: int) -> str:
    size = f"{length} bytes" if length is not None else "the body"
    return (
        f"request body too large: {size} exceeds the limit of {limit} bytes "
        "(webhook.max_body_bytes)"
    )


async def publish_webhook(
    publisher: KafkaPublisher, body: bytes, records: Sequence[IntakeRecord]
) -> web.Response:
    """Publish an accepted webhook to Kafka (cluster ingest) and answer: 200 once the
    broker acknowledged (``acks=all``), else 503 with ``Retry-After``."""
    # Lazy: the Kafka client is loaded only with cluster ingest (adapters.registry).
    from adapters.registry import PublishError

    try:
        messages = await publisher.publish(body, records)
    except asyncio.CancelledError:
        raise
    except PublishError as exc:
        _log.error("kafka publish failed", error=str(exc), alerts=len(records))
        KAFKA_PUBLISHED.labels(result="failed").inc(len(records))
        WEBHOOK_REJECTED.labels(status="503", reason="kafka_unavailable").inc()
        ALERTS_RECEIVED.labels(source="alertmanager", result="unavailable").inc(len(records))
        return json_error(
            503,
            "the Kafka cluster did not acknowledge the alerts; they were not accepted, "
            "retry later",
            headers=[(hdrs.RETRY_AFTER, str(PUBLISH_RETRY_AFTER_S))],
        )
    KAFKA_PUBLISHED.labels(result="acked").inc(len(records))
    ALERTS_RECEIVED.labels(source="alertmanager", result="accepted").inc(len(records))
    return web.json_response(
        {"status": "success", "accepted": len(records), "published": messages}
    )
