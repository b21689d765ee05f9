"""JSON responses for every outcome, errors included (404 and 405 too).

No middleware: aiohttp runs a middleware chain (two extra coroutines) on every request
once an app has one, which costs the webhook ~10 % of its throughput (bench/README.md,
P2). Instead:

- every route but the webhook is registered wrapped in :func:`json_errors` (aiohttp's
  HTTP exceptions and unexpected errors become JSON bodies);
- the webhook handles its own errors (it answers every rejection itself and calls
  :func:`internal_error` as its last resort);
- :func:`add_unmatched_route` registers a catch-all route, last, that answers the JSON
  404 / 405 (with ``Allow``) aiohttp would otherwise send as plain text.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestPayloadError

from router.logging import get_logger

__all__ = [
    "Handler",
    "add_unmatched_route",
    "http_exception_response",
    "internal_error",
    "is_json_wrapped",
    "json_error",
    "json_errors",
]

_log = get_logger("router.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Path pattern of the catch-all route (matches every path; tried after every other).
_UNMATCHED_PATH = "/{unmatched_path:.*}"


def json_error(
    status: int,
    error: str,
    *,
    location: str | None = None,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
) -> web.Response:
    """``{"status": "error", "error": ..., "location": ...}`` with the given HTTP status."""
    body: dict[str, object] = {"status": "error", "error": error}
    if location is not None:
        body["location"] = location
    response = web.json_response(body, status=status)
    if headers:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            response.headers.add(name, value)
    return response


def http_exception_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """The JSON answer for one of aiohttp's HTTP exceptions (status >= 400)."""
    kept = [
        (name, value)
        for name, value in exc.headers.items()
        if name.lower() not in (hdrs.CONTENT_TYPE.lower(), hdrs.CONTENT_LENGTH.lower())
    ]
    if exc.status == 404:
        message = f"not found: {request.method} {request.path}"
    elif exc.status == 405:
        allowed = exc.headers.get(hdrs.ALLOW, "")
        message = f"method {request.method} not allowed on {request.path} (allowed: {allowed})"
    else:
        message = exc.reason
    return json_error(exc.status, message, headers=kept)


def internal_error(request: web.Request) -> web.Response:
    """Last resort for an unexpected exception: log it with its traceback, answer 500.

    Call it from an ``except`` block (the traceback logged is the one being handled).
    """
    _log.exception("unhandled error", method=request.method, path=request.path)
    return json_error(500, "internal error (see the service log)")


_WRAPPED: weakref.WeakSet[Callable[..., object]] = weakref.WeakSet()


def json_errors(handler: Handler) -> Handler:
    """Wrap a route handler so that its errors are answered as JSON bodies.

    aiohttp's HTTP exceptions with a status >= 400 become :func:`json_error` bodies
    (headers such as ``Allow`` kept); a body the client sent that cannot be read or
    decoded is answered 400; any other exception is logged and answered 500.
    """

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_exception_response(request, exc)
        except RequestPayloadError:  # the client's body (e.g. a wrong Content-Encoding)
            response = json_error(400, "the request body could not be read or decoded")
            response.force_close()
            return response
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 — last-resort handler: logged with traceback, answered 500
            return internal_error(request)

    _WRAPPED.add(wrapped)
    return wrapped


def is_json_wrapped(handler: Callable[..., object]) -> bool:
    """True when ``handler`` was made by :func:`json_errors` (tests check every route)."""
    return handler in _WRAPPED


async def handle_unmatched(request: web.Request) -> web.Response:
    """The JSON 404, or 405 with ``Allow`` when the path exists for other methods."""
    own = request.match_info.route.resource
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not own:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        exc: web.HTTPException = web.HTTPMethodNotAllowed(request.method, allowed)
    else:
        exc = web.HTTPNotFound()
    return http_exception_response(request, exc)


def add_unmatched_route(app: web.Application) -> None:
    """Register :func:`handle_unmatched` for every method and path.

    Call it after every other route: aiohttp tries the most specific paths first and,
    among resources of the same prefix, in registration order, so this route only
    answers requests no other route takes.
    """
    app.router.add_route(hdrs.METH_ANY, _UNMATCHED_PATH, json_errors(handle_unmatched))
