"""The SNS inbound client against a real HTTP server on 127.0.0.1: pattern, cache bound,
size cap, redirects, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.registry import SnsInboundClient, SnsInboundSettings
from adapters.sns_inbound import CERT_CACHE_SIZE, MAX_CERT_BYTES
from router.errors import SnsMessageError


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Certificates at /c/{n}.pem, a huge one, a redirect, a slow one; hits per path."""
    hits: dict[str, int] = {}

    async def cert(request: web.Request) -> web.StreamResponse:
        hits[request.path] = hits.get(request.path, 0) + 1
        name = request.match_info["name"]
        if name == "huge":
            return web.Response(body=b"x" * (MAX_CERT_BYTES + 10))
        if name == "moved":
            raise web.HTTPFound("/c/1.pem")
        if name == "slow":
            await asyncio.Event().wait()  # never answers: the client's timeout decides
        return web.Response(body=f"pem {name}".encode())

    app = web.Application()
    app.router.add_get("/c/{name}.pem", cert)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield str(test_server.make_url("")).rstrip("/"), hits
    await test_server.close()


def _client(base: str, timeout_s: float = 2.0) -> SnsInboundClient:
    pattern = "^" + base.replace(".", r"\.") + "/c/"
    return SnsInboundClient(SnsInboundSettings(cert_url_pattern=pattern,
                                               subscribe_url_pattern=pattern,
                                               timeout_s=timeout_s))


async def test_cache_is_bounded_and_keeps_recent(server: tuple[str, dict[str, int]]) -> None:
    """Past CERT_CACHE_SIZE URLs the oldest is fetched again; a recent one is not."""
    base, hits = server
    client = _client(base)
    try:
        for n in range(CERT_CACHE_SIZE + 1):
            assert await client.certificate(f"{base}/c/{n}.pem") == f"pem {n}".encode()
        await client.certificate(f"{base}/c/{CERT_CACHE_SIZE}.pem")
        await client.certificate(f"{base}/c/0.pem")
        assert hits[f"/c/{CERT_CACHE_SIZE}.pem"] == 1 and hits["/c/0.pem"] == 2
    finally:
        await client.close()


@pytest.mark.parametrize(("name", "reason", "status"), [
    ("huge", "certificate_invalid", 400),
    ("moved", "certificate_unavailable", 503),  # redirects are not followed
    ("slow", "certificate_unavailable", 503),
])
async def test_refusals(server: tuple[str, dict[str, int]], name: str, reason: str,
                        status: int) -> None:
    """Oversized, redirected or too slow: refused with its reason, nothing cached."""
    base, hits = server
    client = _client(base, timeout_s=0.3)
    try:
        with pytest.raises(SnsMessageError) as err:
            await client.certificate(f"{base}/c/{name}.pem")
        assert (err.value.reason, err.value.status) == (reason, status)
        assert "/c/1.pem" not in hits
    finally:
        await client.close()


async def test_pattern_is_matched_from_the_start(server: tuple[str, dict[str, int]]) -> None:
    """A URL that only contains an allowed one is refused without a request."""
    base, hits = server
    client = _client(base)
    try:
        with pytest.raises(SnsMessageError) as err:
            await client.certificate(f"http://evil.example/?u={base}/c/1.pem")
        assert err.value.reason == "cert_url_refused"
        with pytest.raises(SnsMessageError) as err:
            await client.confirm_subscription(f"http://evil.example/{base}/c/1.pem")
        assert err.value.reason == "subscribe_url_refused"
        assert hits == {}
    finally:
        await client.close()
