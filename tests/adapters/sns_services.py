"""Real SNS peers for tests: moto in server mode (a subprocess) and a fault-injecting proxy.

``MotoServer`` runs ``moto_server`` on a free 127.0.0.1 port, stopped by its PID; what it
"sent" is read back from ``/moto-api/data.json``. ``FaultProxy`` is an aiohttp app in
front of it that answers the first N requests with a scripted fault (SNS ``Throttling``
400, or 503) and forwards the rest, recording the time of every request it received.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.services.ports import free_port

REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}

_ERROR_BODY = (
    '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
    "<Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
    "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


@dataclass
class MotoServer:
    """A running ``moto_server`` subprocess."""

    url: str
    process: subprocess.Popen[bytes]

    def data(self) -> dict[str, Any]:
        """moto's record of everything (``sns.SMS``, ``sns.Topic[].sent_notifications``)."""
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as resp:
            result: dict[str, Any] = json.load(resp)
        return result

    def sms(self) -> list[dict[str, Any]]:
        """Every SMS moto accepted, in order."""
        return list(self.data().get("sns", {}).get("SMS", []))

    def reset(self) -> None:
        """Forget every resource and message."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def client(self) -> Any:
        """A plain boto3 SNS client for this server (test setup and reference calls)."""
        import boto3

        return boto3.client("sns", region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """Start moto_server on a free port; stop it by PID on exit."""
    binary = Path(sys.executable).parent / "moto_server"
    port = free_port()
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = MotoServer(url=f"http://127.0.0.1:{port}", process=process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {process.returncode}")
            try:
                server.data()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class FaultProxy:
    """Forwards to ``upstream``; the first ``len(faults)`` requests get the faults instead."""

    upstream: str
    # "throttling" (400 Throttling), "503" (503 ServiceUnavailable), "503-html" (a
    # load balancer's HTML page)
    faults: list[str] = field(default_factory=list)
    retry_after_s: int | None = None
    received_at: list[float] = field(default_factory=list)  # monotonic, every request
    forwarded_at: list[float] = field(default_factory=list)
    bodies: list[dict[str, str]] = field(default_factory=list)  # forwarded form bodies
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received_at.append(time.monotonic())
        body = await request.read()
        if self.faults:
            fault = self.faults.pop(0)
            headers = {}
            if self.retry_after_s is not None:
                headers["Retry-After"] = str(self.retry_after_s)
            if fault == "throttling":
                body_xml = _ERROR_BODY.format(kind="Sender", code="Throttling",
                                              message="Rate exceeded")
                return web.Response(status=400, text=body_xml, content_type="text/xml",
                                    headers=headers)
            if fault == "503":
                body_xml = _ERROR_BODY.format(kind="Receiver", code="ServiceUnavailable",
                                              message="Service is unavailable")
                return web.Response(status=503, text=body_xml, content_type="text/xml",
                                    headers=headers)
            return web.Response(status=503, text="<html>Service Unavailable</html>",
                                content_type="text/html", headers=headers)
        self.forwarded_at.append(time.monotonic())
        self.bodies.append(dict(urllib.parse.parse_qsl(body.decode())))
        assert self._session is not None
        skip = {"host", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body, headers=headers) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items()
                   if k.lower() not in skip | {"content-encoding", "connection"}}
            return web.Response(status=resp.status, body=payload, headers=out)


async def wait_for(predicate: Any, timeout_s: float = 60.0, interval_s: float = 0.05) -> None:
    """Poll ``predicate()`` until true (generous timeout: the machine may be loaded)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval_s)
