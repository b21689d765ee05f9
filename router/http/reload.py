"""``POST /-/reload`` and the rule-file watcher's lifecycle (one ``cleanup_ctx``).

``POST /-/reload`` (the endpoint Prometheus and Alertmanager use) reloads the rule files:
200 with a summary when the new rule set is in force, 422 with every positioned problem
when it was rejected (the running rules stay). It needs scope ``operate`` when API
credentials are configured (the route is wrapped in :func:`router.http.auth.requires`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from router.http.state import CONFIG, RULES, STATE
from router.workers.loop import Supervised
from router.workers.reloader import RuleReloader

__all__ = ["RELOADER", "handle_reload", "reloader_ctx"]

RELOADER: web.AppKey[RuleReloader] = web.AppKey("rules_reloader")


async def handle_reload(request: web.Request) -> web.Response:
    """Reload the rule set now; answer with the outcome."""
    result = await request.app[RELOADER].reload("POST /-/reload")
    return web.json_response(result.summary(), status=200 if result.ok else 422)


async def reloader_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the reloader over the app's rules holder and run the file watcher."""
    config = app[CONFIG]
    reloader = RuleReloader(config.rules, app[RULES],
                            poll_interval_s=config.rules_poll_interval_s)
    app[RELOADER] = reloader
    await reloader.prime()
    state = app[STATE]
    watcher = Supervised(reloader, "rules-watch",
                         on_exit=lambda code: state.request_stop(exit_code=code),
                         stop_timeout_s=60.0)
    try:
        yield
    finally:
        await watcher.stop()
