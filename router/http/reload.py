"""``POST /-/reload``: reload the rule files now.

``POST /-/reload`` (the endpoint Prometheus and Alertmanager use) reloads the rule files:
200 with a summary when the new rule set is in force, 422 with every positioned problem
when it was rejected (the running rules stay). It needs scope ``operate`` when API
credentials are configured (the route is wrapped in :func:`router.http.auth.requires`).
The reloader itself (and its file watcher) is built by :mod:`router.app`.
"""

from __future__ import annotations

from aiohttp import web

from router.http.state import RELOADER

__all__ = ["handle_reload"]


async def handle_reload(request: web.Request) -> web.Response:
    """Reload the rule set now; answer with the outcome."""
    result = await request.app[RELOADER].reload("POST /-/reload")
    return web.json_response(result.summary(), status=200 if result.ok else 422)
