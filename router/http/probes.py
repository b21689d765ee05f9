"""Operational endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: the process answers (liveness); always 200.
- ``/readyz``: 200 when the store answers a ping, a rule set is loaded, the service
  is not draining and (with a Kafka source) the consumer has partitions and reaches the
  broker; else 503 with the reasons (load balancers stop sending traffic). Both carry
  an ``instance`` detail (id, version, rule-set hash, the instances seen, and
  ``rules_mismatch`` when another instance runs another rule set: a detail, not a
  failure).
- ``/metrics``: Prometheus text format (or OpenMetrics if asked) from
  :data:`router.metrics.REGISTRY`; the outbox depth and intake backlog gauges are
  refreshed from ``store.counts()``, and the per-stage backlog gauges
  (``tocsin_backlog_items``, ``tocsin_backlog_oldest_age_seconds``) from
  ``store.backlog()``, at each scrape.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from router.backpressure import record_backlog
from router.http.state import BACKPRESSURE, CLOCK, INSTANCE, KAFKA_SOURCE, RULES, STATE, STORE
from router.logging import get_logger
from router.metrics import INTAKE_PENDING, OUTBOX_DEPTH, OUTBOX_STATUSES, REGISTRY

__all__ = ["PROBE_TIMEOUT_S", "handle_healthz", "handle_metrics", "handle_readyz"]

#: Upper bound on a store query made by a probe or a scrape.
PROBE_TIMEOUT_S: Final = 2.0

_log = get_logger("router.http.probes")


async def handle_healthz(request: web.Request) -> web.Response:
    """Liveness: the event loop answers."""
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    """Readiness: store reachable, rules loaded, not draining."""
    app = request.app
    reasons: list[str] = []
    if app[STATE].draining:
        reasons.append("draining: the service is shutting down")
    if app[RULES].current is None:
        reasons.append("no rule set loaded")
    if not await _store_ok(request):
        reasons.append("state store not answering")
    kafka = app.get(KAFKA_SOURCE)
    if kafka is not None and (kafka_reason := kafka.not_ready_reason()) is not None:
        reasons.append(kafka_reason)
    doc: dict[str, object] = ({"status": "not ready", "reasons": reasons} if reasons
                              else {"status": "ready"})
    instance = app.get(INSTANCE)
    if instance is not None:
        doc["instance"] = instance.detail()
    return web.json_response(doc, status=503 if reasons else 200)


async def _store_ok(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            return await request.app[STORE].ping()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — a failing store is "not ready", not a 500
        _log.warning("store ping failed", error=str(exc), error_type=type(exc).__name__)
        return False


async def handle_metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of every ``tocsin_*`` metric."""
    app = request.app
    now = app[CLOCK].now()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            counts = await app[STORE].counts()
            backlog = await app[STORE].backlog(
                now, overdue_grace_s=app[BACKPRESSURE].config.overdue_grace_s)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — still expose the other metrics
        _log.warning("store counts failed", error=str(exc), error_type=type(exc).__name__)
    else:
        INTAKE_PENDING.set(counts.get("intake_pending", 0))
        for status in OUTBOX_STATUSES:
            OUTBOX_DEPTH.labels(status=status).set(counts.get(status, 0))
        record_backlog(backlog, now)
    # Negotiated like prometheus_client's own server: Prometheus text 0.0.4 by default,
    # OpenMetrics when the scraper asks for it.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = web.Response(body=encoder(REGISTRY))
    response.headers["Content-Type"] = content_type
    return response
