"""router.http.server: the service's listening server and its per-connection guards.

A real :class:`HttpServer` on 127.0.0.1 (free port) over a real SQLite store; clients are
raw sockets (to stall exactly where a slow client stalls) and aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from router.app import create_app
from router.config import ServiceConfig
from router.http import STORE, ServiceState
from router.http.server import HttpServer
from router.rules import RuleSet, load_rules

from .conftest import REPO, metric

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
SINGLE = (FIXTURES / "01-firing-single.json").read_bytes()
URL = "/webhook/alertmanager"
TOKEN = "s3cr3t-webhook-token"

Serve = Callable[..., Awaitable[tuple[int, web.Application]]]


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    """The repository's rule set, loaded once for the module."""
    return load_rules([REPO / "rules"])


@pytest.fixture
async def serve(tmp_path: Path, rules: RuleSet) -> AsyncIterator[Serve]:
    """Start HttpServer for an app with the given ``webhook`` settings; stop them all after."""
    servers: list[HttpServer] = []

    async def factory(**webhook: Any) -> tuple[int, web.Application]:
        config = ServiceConfig.model_validate({
            "state_url": f"sqlite:///{tmp_path / f'state{len(servers)}' / 'tocsin.db'}",
            "webhook": webhook,
        })
        app = create_app(config, rules=rules, state=ServiceState(), run_workers=False)
        server = HttpServer(app, config.webhook, shutdown_timeout_s=2.0)
        servers.append(server)
        await server.start("127.0.0.1", 0)
        return server.port, app

    yield factory
    for server in servers:
        await server.stop()


def _request(body: bytes, *, extra: bytes = b"") -> bytes:
    return (b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: tocsin\r\n"
            b"Content-Type: application/json\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def _closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Read until the server closes the connection (bounded): what it sent before."""
    async with asyncio.timeout(within_s):
        return await reader.read()


async def _response(reader: asyncio.StreamReader, within_s: float) -> tuple[bytes, bytes]:
    """One response (head, body) without waiting for the connection to close."""
    async with asyncio.timeout(within_s):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return head, await reader.readexactly(length)


async def _post(port: int, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
        f"http://127.0.0.1:{port}{URL}", data=body,
        headers={"Content-Type": "application/json", **headers},
    ) as response:
        return response.status, await response.json()


async def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll ``predicate()`` until it holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def _closed(reason: str) -> float:
    return metric("tocsin_http_connections_closed_total", reason=reason)


async def test_connection_that_never_finishes_its_headers_is_closed(serve: Serve) -> None:
    """Reproducer 3: half-sent headers no longer hold the connection (was: 3630 s)."""
    port, _ = await serve(header_timeout_s=0.3)
    before = _closed("header_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: tocsin\r\nContent-")
    await writer.drain()
    started = time.monotonic()
    assert await _closed_by_server(reader, within_s=5) == b""
    assert 0.25 <= time.monotonic() - started < 3
    assert _closed("header_timeout") - before == 1
    writer.close()


async def test_connection_that_sends_nothing_is_closed(serve: Serve) -> None:
    """An opened connection that never sends a byte is closed after header_timeout_s."""
    port, _ = await serve(header_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_by_server(reader, within_s=5) == b""
    writer.close()


async def test_stalled_webhook_body_is_answered_408(serve: Serve) -> None:
    """Reproducer 3: a body that stops arriving gets 408 after body_timeout_s, not a hang."""
    port, app = await serve(body_timeout_s=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request(SINGLE)[:-10])  # the last 10 bytes never come
    await writer.drain()
    started = time.monotonic()
    head, body = await _response(reader, within_s=5)
    assert time.monotonic() - started < 3
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in head
    assert b"webhook.body_timeout_s" in body
    assert (await app[STORE].counts())["intake_pending"] == 0
    writer.close()


async def test_legitimate_webhook_gets_200_within_a_second_among_2000_stalled(
    serve: Serve,
) -> None:
    """Reproducer 3: 2,000 stalled connections (headers or body) do not delay a real 200."""
    port, app = await serve(max_connections=4096, header_timeout_s=60, body_timeout_s=60)
    stalled: list[asyncio.StreamWriter] = []
    try:
        for index in range(2000):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            if index % 2:
                writer.write(b"POST /webhook/alertmanager HTTP/1.1\r\nHost: t\r\nX-A: ")
            else:
                writer.write(_request(SINGLE)[:-20])
            stalled.append(writer)
        await asyncio.gather(*(w.drain() for w in stalled))
        started = time.monotonic()
        status, answer = await _post(port, SINGLE)
        elapsed = time.monotonic() - started
        assert (status, answer) == (200, {"status": "success", "accepted": 1})
        print(f"200 among 2,000 stalled connections in {elapsed:.3f} s")
        assert elapsed < 1.0, elapsed
        assert (await app[STORE].counts())["intake_pending"] == 1
    finally:
        for writer in stalled:
            writer.close()


async def test_connection_over_the_cap_gets_503_and_a_log_line(serve: Serve) -> None:
    """Reproducer 3: over max_connections a client gets 503 + Retry-After and one warning."""
    port, _ = await serve(max_connections=3, header_timeout_s=30)
    before = _closed("connection_limit")
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    try:
        with capture_logs() as logs:
            refused = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            answers = [await _closed_by_server(reader, within_s=5) for reader, _ in refused]
        for answer in answers:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"Retry-After: 1" in head
            assert "webhook.max_connections" in json.loads(body)["error"]
        warnings = [e for e in logs if e["event"].startswith("connection limit reached")]
        assert len(warnings) == 1  # rate-limited: one line per interval, not one per client
        assert warnings[0]["limit"] == 3
        assert _closed("connection_limit") - before == 2
    finally:
        for _, writer in held:
            writer.close()
        for _, writer in refused:
            writer.close()


async def test_slots_freed_by_the_header_timeout_serve_the_retry(serve: Serve) -> None:
    """With the cap full of stalled clients, the sender's retry succeeds once they time out."""
    port, _ = await serve(max_connections=20, header_timeout_s=0.3)
    stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    for _, writer in stalled:
        writer.write(b"GET /healthz HTTP/1.1\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await _closed_by_server(reader, within_s=5)).startswith(b"HTTP/1.1 503 ")
    writer.close()
    await asyncio.gather(*(_closed_by_server(r, within_s=5) for r, _ in stalled))
    status, _ = await _post(port, SINGLE)
    assert status == 200
    for _, writer in stalled:
        writer.close()


async def test_open_connections_are_counted_and_released(serve: Serve) -> None:
    """tocsin_http_connections_open follows connections opening and closing."""
    port, _ = await serve()
    base = metric("tocsin_http_connections_open")
    pairs = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await _until(lambda: metric("tocsin_http_connections_open") - base == 3)
    for _, writer in pairs:
        writer.close()
    await _until(lambda: metric("tocsin_http_connections_open") == base)


async def test_keepalive_connection_closes_after_max_requests(serve: Serve) -> None:
    """The keepalive_max_requests-th response says Connection: close and the socket closes."""
    port, _ = await serve(keepalive_max_requests=2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
    answer = await _closed_by_server(reader, within_s=5)
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert answer.count(b"Connection: close") == 1
    writer.close()


async def test_idle_keepalive_connection_is_closed(serve: Serve) -> None:
    """After a response, an idle connection is closed after keepalive_timeout_s."""
    port, _ = await serve(keepalive_timeout_s=0.3, header_timeout_s=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    started = time.monotonic()
    answer = await _closed_by_server(reader, within_s=5)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started < 3
    writer.close()


async def test_keepalive_connection_serves_requests_slower_than_the_header_timeout(
    serve: Serve,
) -> None:
    """Idle time between requests is the keep-alive's, not the header timeout's."""
    port, _ = await serve(header_timeout_s=0.2, keepalive_timeout_s=30)
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for _ in range(2):
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                assert response.headers.get("Connection") != "close"
            await asyncio.sleep(0.4)  # idle longer than header_timeout_s on purpose
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200


async def test_malformed_header_is_json_400_and_no_log_holds_the_token(
    serve: Serve, caplog: pytest.LogCaptureFixture,
) -> None:
    """Reproducer 10: ``Bearer <token>\\x00`` answers JSON 400; no log line has the token."""
    port, _ = await serve(bearer_token=TOKEN)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_request(SINGLE, extra=b"Authorization: Bearer " + TOKEN.encode()
                              + b"\x00\r\n"))
        answer = await _closed_by_server(reader, within_s=5)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400"
    assert json.loads(body)["status"] == "error"
    assert TOKEN.encode() not in answer
    assert any(e["event"] == "malformed HTTP request rejected" for e in logs)
    assert TOKEN not in repr(logs)
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert record.exc_info is None or TOKEN not in repr(record.exc_info[1])


async def test_non_utf8_bearer_token_is_401(serve: Serve) -> None:
    """Reproducer 10: ``Authorization: Bearer \\xff\\xfe`` answers 401 JSON (was 500)."""
    port, app = await serve(bearer_token=TOKEN)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request(SINGLE, extra=b"Connection: close\r\nAuthorization: Bearer \xff\xfe\r\n"))
    answer = await _closed_by_server(reader, within_s=5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert json.loads(body) == {"status": "error", "error": "invalid bearer token"}
    assert (await app[STORE].counts())["intake_pending"] == 0


def test_aiohttp_keeps_the_request_count_the_guard_relies_on() -> None:
    """The handler's header deadline reads RequestHandler._request_count: it must exist."""
    assert "_request_count" in web.RequestHandler.__init__.__code__.co_names


async def test_non_http_bytes_get_json_400_logged_at_debug_only(serve: Serve) -> None:
    """A TLS hello on the plain port is a JSON 400, logged at debug (scanners are noise)."""
    port, _ = await serve()
    with capture_logs() as logs:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 HTTP/1.1\r\n\r\n")
        answer = await _closed_by_server(reader, within_s=5)
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 400 " in head.split(b"\r\n")[0]
    assert json.loads(body)["status"] == "error"
    rejected = [e for e in logs if e["event"] == "malformed HTTP request rejected"]
    assert [e["log_level"] for e in rejected] == ["debug"]
