"""The listening HTTP server: aiohttp's request handler behind per-connection guards.

aiohttp bounds a request line and each header line (8190 bytes), the header count (128)
and the body (``client_max_size``), but its only clock on a connection is the keep-alive
timer (3630 s by default) started when the connection opens: a client that never
finishes its headers holds a connection, and a file descriptor, for an hour. The
connections of :class:`HttpServer` are served by a subclass of aiohttp's public
:class:`aiohttp.web.RequestHandler` that adds, from the ``webhook`` section:

- ``header_timeout_s``: a request's headers must be complete within this time of the
  connection opening, or of the first byte of the next request on a kept-alive
  connection; otherwise the connection is closed (``tocsin_http_connections_closed
  {reason="header_timeout"}``). How long a body may take is the route's business (the
  webhook bounds its read with ``body_timeout_s``).
- ``max_connections``: a connection over the cap is answered ``503`` with
  ``Retry-After`` and closed before anything is read (``reason="connection_limit"``);
  a warning says so at most every :data:`LIMIT_LOG_INTERVAL_S`.
- ``keepalive_timeout_s``: an idle kept-alive connection is closed (aiohttp's timer);
  ``keepalive_max_requests``: the response that reaches it carries ``Connection: close``.
- A malformed request (request line, header name or value, e.g. a NUL after a bearer
  token) is answered ``400`` with a JSON error. aiohttp's own message quotes the raw
  line, which may hold a credential: neither the answer nor the log line carries it,
  only the error class.

The asyncio server is made with ``loop.create_server`` and a factory of that handler
(aiohttp's ``TCPSite`` would pass its own); :class:`aiohttp.web.AppRunner` still runs
the app's startup, graceful shutdown and cleanup.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from router.config import WebhookConfig
from router.http.responses import json_error
from router.logging import get_logger
from router.metrics import HTTP_CONNECTIONS_CLOSED, HTTP_CONNECTIONS_OPEN

__all__ = ["LIMIT_LOG_INTERVAL_S", "HttpServer"]

#: At most one "connection limit reached" warning per this many seconds.
LIMIT_LOG_INTERVAL_S: Final = 10.0
#: Seconds a client refused at the connection cap is asked to wait.
BUSY_RETRY_AFTER_S: Final = 1

_log = get_logger("router.http.server")
_BUSY_BODY = json.dumps({"status": "error", "error": "too many open connections "
                         "(webhook.max_connections): retry later"}).encode()
_BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (BUSY_RETRY_AFTER_S, len(_BUSY_BODY), _BUSY_BODY)
)
_REFUSED = HTTP_CONNECTIONS_CLOSED.labels(reason="connection_limit")
_HEADER_TIMEOUT = HTTP_CONNECTIONS_CLOSED.labels(reason="header_timeout")


class _Guard:
    """What the connections of one server share: the limits and the open count."""

    def __init__(self, config: WebhookConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.max_connections = config.max_connections
        self.header_timeout_s = config.header_timeout_s
        self.keepalive_max_requests = config.keepalive_max_requests
        self.open = 0
        self._loop = loop
        self._refused_unlogged = 0
        self._last_warning: float | None = None

    def admit(self) -> bool:
        if self.open < self.max_connections:
            self.open += 1
            HTTP_CONNECTIONS_OPEN.inc()
            return True
        _REFUSED.inc()
        self._refused_unlogged += 1
        now = self._loop.time()
        if self._last_warning is None or now - self._last_warning >= LIMIT_LOG_INTERVAL_S:
            _log.warning("connection limit reached: new connections are answered 503",
                         open=self.open, limit=self.max_connections,
                         refused=self._refused_unlogged, setting="webhook.max_connections")
            self._last_warning = now
            self._refused_unlogged = 0
        return False

    def release(self) -> None:
        self.open -= 1
        HTTP_CONNECTIONS_OPEN.dec()


class _GuardedHandler(web.RequestHandler):
    """aiohttp's connection handler with a header deadline, a cap and masked errors.

    Relies on ``RequestHandler._request_count`` (requests whose headers were parsed on
    this connection), an attribute aiohttp has kept since 3.0; the tests of this module
    fail if it goes.
    """

    def __init__(self, manager: web.Server, guard: _Guard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._admitted = False
        self._finished = 0  # responses finished on this connection
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._guard.admit():
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_BUSY)  # flushed before the close below
            self.force_close()
            return
        self._admitted = True
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_timer()
        if self._admitted:
            self._admitted = False
            self._guard.release()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count > self._finished:  # headers complete: a request is served
            self._disarm_header_timer()
        elif data and self._header_timer is None and self.transport is not None:
            self._arm_header_timer()  # the first bytes of the next request

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """aiohttp's, plus ``Connection: close`` once ``keepalive_max_requests`` is reached."""
        if (isinstance(resp, web.StreamResponse)
                and self._finished + 1 >= self._guard.keepalive_max_requests):
            resp.force_close()
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._finished += 1

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A malformed request gets a JSON 400 that, like the log, never quotes the request."""
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)
        kind = type(exc).__name__
        # Not HTTP at all (a TLS hello, a port scanner): debug only, as aiohttp does.
        log = _log.debug if isinstance(exc, BadHttpMethod) else _log.info
        log("malformed HTTP request rejected", status=status, error_type=kind,
            peer=request.remote)
        response = json_error(
            status, f"malformed HTTP request ({kind}): check the request line and headers")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's error log, without the message of a client's malformed request."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError | RequestPayloadError):
            _log.info("client request failed", error_type=type(exc).__name__)
            return
        super().log_exception(*args, **kw)

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._guard.header_timeout_s,
                                                   self._header_expired)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._request_count > self._finished or self.transport is None:
            return
        _HEADER_TIMEOUT.inc()
        _log.debug("connection closed: headers not complete in time",
                   header_timeout_s=self._guard.header_timeout_s)
        self.force_close()


class HttpServer:
    """Serve an app on ``host:port`` with the guards above (``webhook`` settings)."""

    def __init__(self, app: web.Application, config: WebhookConfig, *,
                 shutdown_timeout_s: float) -> None:
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=shutdown_timeout_s)
        self._config = config
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Start the app (its cleanup contexts run here), then listen.

        On failure call :meth:`stop` all the same: it cleans up what was started.
        """
        await self._runner.setup()
        server = self._runner.server
        assert server is not None  # set by setup()
        loop = asyncio.get_running_loop()
        guard = _Guard(self._config, loop)
        kwargs: dict[str, Any] = {
            "loop": loop,
            "keepalive_timeout": self._config.keepalive_timeout_s,
            "access_log": None,
        }

        def factory() -> _GuardedHandler:
            return _GuardedHandler(server, guard, **kwargs)

        self._server = await loop.create_server(factory, host, port, backlog=128)

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (bounded), clean the app up."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._runner.cleanup()
