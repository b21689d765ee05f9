"""JSON errors without a middleware: wrapped routes, the webhook's own last resort, 404/405."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import router.http.webhook as webhook_module
from router.http.responses import handle_unmatched, is_json_wrapped, json_errors
from router.http.webhook import handle_alertmanager

from .conftest import store_of

BODY = b'{"alerts": [{"labels": {"alertname": "A"}}]}'
JSON = {"Content-Type": "application/json"}


async def test_app_has_no_middleware(client: TestClient[Any, Any]) -> None:
    """The webhook's requests run through no middleware chain (its cost is per request)."""
    assert list(client.app.middlewares) == []


async def test_every_route_but_the_webhook_is_wrapped(client: TestClient[Any, Any]) -> None:
    """Every registered handler answers errors as JSON: wrapped, or the webhook itself."""
    handlers = [route.handler for route in client.app.router.routes()]
    assert handle_alertmanager in handlers
    unwrapped = [h for h in handlers if h is not handle_alertmanager and not is_json_wrapped(h)]
    assert unwrapped == []
    assert any(getattr(h, "__wrapped__", None) is handle_unmatched for h in handlers)


async def test_webhook_unexpected_error_is_json_500(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the webhook path is answered 500 with a JSON body, nothing persisted."""

    def broken(body: bytes, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(webhook_module, "parse_webhook", broken)
    response = await client.post("/webhook/alertmanager", data=BODY, headers=JSON)
    assert response.status == 500
    assert await response.json() == {"status": "error",
                                     "error": "internal error (see the service log)"}
    assert (await store_of(client).counts())["intake_pending"] == 0


async def test_wrapped_route_unexpected_error_is_json_500(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing read API answers a JSON 500, not aiohttp's plain-text page."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(store_of(client), "list_deliveries", broken)
    response = await client.get("/api/v1/deliveries")
    assert response.status == 500
    assert response.content_type == "application/json"
    assert (await response.json())["error"] == "internal error (see the service log)"


async def test_wrapped_route_http_exception_is_json(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiohttp HTTP exception raised inside a wrapped handler keeps its status, as JSON."""

    async def too_large(*args: object, **kwargs: object) -> None:
        raise web.HTTPRequestEntityTooLarge(max_size=10, actual_size=20)

    monkeypatch.setattr(store_of(client), "list_deliveries", too_large)
    response = await client.get("/api/v1/deliveries")
    assert response.status == 413
    assert response.content_type == "application/json"
    assert (await response.json())["status"] == "error"


async def test_wrong_method_on_a_dynamic_path_is_json_405(client: TestClient[Any, Any]) -> None:
    """A path with a variable part answers 405 with its methods in Allow, as JSON."""
    response = await client.delete("/api/v1/incidents/abc")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert (await response.json())["error"] == (
        "method DELETE not allowed on /api/v1/incidents/abc (allowed: GET,HEAD)"
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_unknown_path_is_json_404_for_every_method(
    client: TestClient[Any, Any], method: str
) -> None:
    """No route for the path: a JSON 404 naming method and path, whatever the method."""
    response = await client.request(method, "/webhook/other")
    assert response.status == 404
    assert await response.json() == {"status": "error",
                                     "error": f"not found: {method} /webhook/other"}


async def test_wrapped_route_undecodable_body_is_json_400() -> None:
    """Reproducer 10: a wrapped route reading a body with a lying Content-Encoding: 400."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/echo", json_errors(echo))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.post("/echo", data=BODY,
                                     headers={**JSON, "Content-Encoding": "gzip"})
        assert response.status == 400
        assert await response.json() == {
            "status": "error", "error": "the request body could not be read or decoded"}
    finally:
        await client.close()
