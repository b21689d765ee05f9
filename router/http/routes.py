"""The route table of the HTTP app: every route and the API scope it needs.

Every route needs a scope (:mod:`router.http.auth`) but the probes and the
acknowledgement links (their signed token is the credential);
tests/http/test_route_scopes.py fails for a route left out of this table. The app and
everything the routes read through its state keys (:mod:`router.http.state`) are built
by the composition root, :func:`router.app.create_app`.
"""

from __future__ import annotations

from aiohttp import web

from router.http.ack_api import add_ack_api_routes
from router.http.ack_links import add_ack_link_routes
from router.http.api import handle_deliveries, handle_intake
from router.http.audiences_api import add_audience_routes
from router.http.auth import requires
from router.http.incidents_api import add_incident_routes
from router.http.probes import handle_healthz, handle_metrics, handle_readyz
from router.http.push_api import add_push_routes
from router.http.reload import handle_reload
from router.http.responses import add_unmatched_route, json_errors
from router.http.sns_webhook import handle_sns
from router.http.webhook import handle_alertmanager

__all__ = ["add_routes"]


def add_routes(app: web.Application, *, public_metrics: bool) -> None:
    """Add every route of Tocsin to ``app`` (``public_metrics``: ``/metrics`` unscoped).

    No middleware (see :mod:`router.http.responses`): the webhook answers its own errors,
    every other route is wrapped in ``json_errors``, unmatched requests get a JSON
    404/405.
    """
    app.router.add_post("/webhook/alertmanager", handle_alertmanager)  # ingest, in-handler
    # SMS replies: authenticated by the SNS signature (no token: SNS cannot send one).
    app.router.add_post("/webhook/sns", json_errors(handle_sns))
    app.router.add_get("/api/v1/deliveries", json_errors(requires("read", handle_deliveries)))
    app.router.add_get("/api/v1/intake", json_errors(requires("read", handle_intake)))
    metrics = handle_metrics if public_metrics else requires("read", handle_metrics)
    app.router.add_get("/metrics", json_errors(metrics))
    app.router.add_get("/healthz", json_errors(handle_healthz))  # open: liveness probe
    app.router.add_get("/readyz", json_errors(handle_readyz))  # open: readiness probe
    add_incident_routes(app)  # /api/v1/incidents, /api/v1/incidents/{id}: read
    add_audience_routes(app)  # /api/v1/audiences, /api/v1/audiences/{name}: read
    add_ack_api_routes(app)  # POST /api/v1/incidents/{id}/ack: operate
    add_ack_link_routes(app)  # GET|POST /ack/{token}: the signed token is the credential
    add_push_routes(app)  # /api/v1/push/subscriptions (404 without a webpush section)
    app.router.add_post("/-/reload", json_errors(requires("operate", handle_reload)))
    add_unmatched_route(app)  # last: JSON 404 / 405 for whatever no route above takes
