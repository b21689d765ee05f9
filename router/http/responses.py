"""JSON responses for every outcome, errors included (404 and 405 too)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import hdrs, web

from router.logging import get_logger

__all__ = ["error_middleware", "json_error"]

_log = get_logger("router.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's HTTP exceptions and unexpected errors into JSON error bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
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
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 — last-resort handler: logged with traceback, answered 500
        _log.exception("unhandled error", method=request.method, path=request.path)
        return json_error(500, "internal error (see the service log)")
