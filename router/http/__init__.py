"""The HTTP surface of Tocsin (aiohttp): webhook intake, history API, probes, metrics.

Routes: ``POST /webhook/alertmanager``, ``GET /api/v1/incidents[/{id}]``,
``GET /api/v1/deliveries``, ``/api/v1/push/subscriptions``, ``POST /-/reload``,
``GET /metrics``, ``GET /healthz``, ``GET /readyz``; each but the probes needs an API
scope when credentials are configured (:mod:`router.http.auth`). Every error is a JSON
body ``{"status": "error", "error": "...", "location": "..."}``.

The routes only (:mod:`router.http.routes`); the app is built by :mod:`router.app`.
"""

from router.http.state import (
    CLOCK,
    CONFIG,
    PROCESSOR,
    RULES,
    STATE,
    STORE,
    RulesRef,
    ServiceState,
)

__all__ = [
    "CLOCK",
    "CONFIG",
    "PROCESSOR",
    "RULES",
    "STATE",
    "STORE",
    "RulesRef",
    "ServiceState",
]
