"""The HTTP surface of Tocsin (aiohttp): webhook intake, history API, probes, metrics.

Routes: ``POST /webhook/alertmanager``, ``GET /api/v1/deliveries``, ``GET /metrics``,
``GET /healthz``, ``GET /readyz``. Every error is a JSON body
``{"status": "error", "error": "...", "location": "..."}``.
"""

from router.http.app import create_app
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
    "create_app",
]
