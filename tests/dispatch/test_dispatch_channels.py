"""The dispatcher through the real SNS and Web Push adapters to real peers.

moto server (behind a fault-injecting proxy) for SMS, the local push service for Web
Push, aiosmtpd for fallback email.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from adapters.smtp import SmtpChannel, SmtpSettings
from adapters.sns import SnsClient, SnsSettings, SnsSmsChannel
from adapters.webpush import WebPushChannel, WebPushSettings
from deploy.local.push_service import PushService, create_app
from router.clock import FakeClock, SystemClock
from router.models import NewDelivery
from router.push_keys import generate_vapid_keys
from router.store import SqliteStore
from router.workers.dispatcher import Dispatcher
from router.workers.retry import RetryPolicy
from tests.adapters.sns_services import REGION, FaultProxy, MotoServer, moto_server, wait_for
from tests.dispatch.test_dispatcher import eventually
from tests.services.ports import free_port
from tests.services.smtp import SmtpServer
from tests.store.factories import T0, make_delivery

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[FaultProxy]:
    moto.reset()
    p = FaultProxy(upstream=moto.url)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def sms_channel(url: str) -> SnsSmsChannel:
    return SnsSmsChannel(SnsClient(SnsSettings(region=REGION, endpoint_url=url,
                                               access_key_id="testing",
                                               secret_access_key="testing", timeout_s=10)))


def sms(key: str, recipient: str = "+33612345678") -> NewDelivery:
    return make_delivery(key, channel="sms", recipient=recipient)


async def run_until(dispatcher: Dispatcher, done: object, timeout_s: float = 60) -> None:
    task = asyncio.create_task(dispatcher.run())
    try:
        await wait_for(done, timeout_s=timeout_s)
    finally:
        await dispatcher.stop()
        await task


async def test_throttling_and_503_backoff_then_success(store: SqliteStore, moto: MotoServer,
                                                       proxy: FaultProxy) -> None:
    """Throttling, 503, Throttling: retried with backoff, then sent exactly once."""
    proxy.faults = ["throttling", "503", "throttling"]
    channel = sms_channel(proxy.url)
    await store.commit_plan([], [sms("k")], now=SystemClock().now(), deadline_s=600)
    d = Dispatcher(store, {"sms": channel}, clock=SystemClock(),
                   policy=RetryPolicy(initial_s=0.05, max_s=0.2), poll_interval_s=0.05,
                   rng=random.Random(3))
    try:
        await run_until(d, lambda: len(moto.sms()) == 1)
    finally:
        await channel.close()
    [row] = await store.list_deliveries()
    assert (row.status, row.attempts, row.segments) == ("sent", 4, 1)
    assert len(proxy.received_at) == 4
    assert [m["phone_number"] for m in moto.sms()] == ["+33612345678"]


async def test_rate_limit_is_respected(store: SqliteStore, moto: MotoServer,
                                      proxy: FaultProxy) -> None:
    """With sms at 4/s, no 1-second window at the proxy sees more than 4 (+1 burst) calls."""
    channel = sms_channel(proxy.url)
    await store.commit_plan([], [sms(f"k{i}") for i in range(12)], now=SystemClock().now(),
                            deadline_s=600)
    d = Dispatcher(store, {"sms": channel}, clock=SystemClock(), policy=RetryPolicy(),
                   concurrency=8, poll_interval_s=0.05, rate_limits={"sms": 4.0})
    try:
        await run_until(d, lambda: len(moto.sms()) == 12)
    finally:
        await channel.close()
    times = proxy.received_at
    assert len(times) == 12
    for start in times:
        assert sum(1 for t in times if start <= t < start + 1.0) <= 4 + 1


async def test_sms_permanent_failure_falls_back_to_email(store: SqliteStore, moto: MotoServer,
                                                         smtp: SmtpServer) -> None:
    """An SMS moto refuses (InvalidParameter) becomes an email to the same contact."""
    moto.reset()
    fallback = make_delivery("k-email", recipient="astreinte@example.fr")
    await store.commit_plan([], [replace(sms("k", recipient="0612345678"), fallback=fallback)],
                            now=T0, deadline_s=600)
    channels = {"sms": sms_channel(moto.url),
                "email": SmtpChannel(SmtpSettings(host="127.0.0.1", port=smtp.port,
                                                  timeout_s=5))}
    d = Dispatcher(store, channels, clock=FakeClock(T0), policy=RetryPolicy())
    try:
        await d.dispatch_once()
        await d.dispatch_once()
    finally:
        await channels["sms"].close()
    [mail] = smtp.handler.wait_for(1)
    assert mail.rcpt_tos == ["astreinte@example.fr"]
    rows = {r.channel: r for r in await store.list_deliveries()}
    assert rows["sms"].status == "failed"
    assert "InvalidParameter" in (rows["sms"].last_error or "")
    assert rows["email"].fallback_of == rows["sms"].id
    assert moto.sms() == []


@pytest.fixture
async def push_rig(tmp_path: Path) -> AsyncIterator[tuple[PushService, WebPushChannel,
                                                          SqliteStore]]:
    port = free_port()
    service = PushService(origin=f"http://127.0.0.1:{port}")
    runner = web.AppRunner(create_app(service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = SqliteStore(str(tmp_path / "push.db"))
    await store.start()
    channel = WebPushChannel(WebPushSettings(vapid_private_key=generate_vapid_keys()[0],
                                             vapid_subject="mailto:ops@example.com",
                                             allowed_endpoints=(service.origin,)), store)
    try:
        yield service, channel, store
    finally:
        await channel.close()
        await store.close()
        await runner.cleanup()


async def test_push_429_retry_after_delays_retry(
        push_rig: tuple[PushService, WebPushChannel, SqliteStore]) -> None:
    """429 with Retry-After: 30 schedules the retry at least 30 s later, then it is sent."""
    service, channel, store = push_rig
    info = service.subscribe("browser")
    await store.add_push_subscription("ops", info["endpoint"], info["keys"]["p256dh"],
                                      info["keys"]["auth"], now=T0)
    service.subscriptions[info["endpoint"].rsplit("/", 1)[1]].script.append((429, 30))
    await store.commit_plan([], [make_delivery("p", channel="push", recipient="ops")],
                            now=T0, deadline_s=600)
    clock = FakeClock(T0)
    d = Dispatcher(store, {"push": channel}, clock=clock,
                   policy=RetryPolicy(initial_s=0.01, max_s=0.02))
    await d.dispatch_once()
    [row] = await store.list_deliveries()
    assert row.status == "pending"
    assert row.next_attempt_at is not None and row.next_attempt_at >= T0 + timedelta(seconds=30)
    clock.advance(29)
    assert await d.dispatch_once() == 0  # not due before Retry-After
    clock.advance(2)
    assert await d.dispatch_once() == 1
    [row] = await store.list_deliveries()
    assert row.status == "sent"
    assert [r.label for r in service.received] == ["browser"]


async def test_push_410_removes_subscription_and_dead_letters(
        push_rig: tuple[PushService, WebPushChannel, SqliteStore]) -> None:
    """410 removes the stored subscription; the delivery is a permanent dead letter."""
    service, channel, store = push_rig
    info = service.subscribe("old browser")
    await store.add_push_subscription("ops", info["endpoint"], info["keys"]["p256dh"],
                                      info["keys"]["auth"], now=T0)
    service.subscriptions[info["endpoint"].rsplit("/", 1)[1]].script.append((410, None))
    await store.commit_plan([], [make_delivery("p", channel="push", recipient="ops")],
                            now=T0, deadline_s=600)
    await Dispatcher(store, {"push": channel}, clock=FakeClock(T0),
                     policy=RetryPolicy()).dispatch_once()
    [row] = await store.list_deliveries()
    assert (row.status, row.dead_letter_reason) == ("failed", "permanent")
    assert "410" in (row.last_error or "")
    assert await store.push_subscriptions("ops") == []


class MuteSmtpServer:
    """A TCP server on 127.0.0.1 that accepts SMTP connections and never answers (not
    even the greeting): a hung mail relay."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> MuteSmtpServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(4096):
            pass  # read whatever the client says; answer nothing

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_hung_smtp_does_not_delay_a_critical_sms(store: SqliteStore,
                                                       moto: MotoServer) -> None:
    """Reproducer (a): an SMTP server that accepts and never answers, 100 e-mails queued
    first: a critical SMS still reaches SNS (moto) at once, long before the e-mails are
    done (old code: the shared slots all wait on SMTP, ~1 min here, 118 s in production)."""
    moto.reset()
    mute = await MuteSmtpServer().start()
    email = SmtpChannel(SmtpSettings(host="127.0.0.1", port=mute.port, timeout_s=8))
    sms_ch = sms_channel(moto.url)
    clock = SystemClock()
    await store.commit_plan([], [replace(make_delivery(f"e{i}"), severity="info")
                                 for i in range(100)], now=clock.now(), deadline_s=600)
    await store.commit_plan([], [sms("page")], now=clock.now(), deadline_s=600)
    d = Dispatcher(store, {"email": email, "sms": sms_ch}, clock=clock, policy=RetryPolicy(),
                   concurrency=8, lease_s=30, send_timeout_s=5, poll_interval_s=0.05,
                   drain_timeout_s=0.5)
    task = asyncio.create_task(d.run())
    try:
        await wait_for(lambda: len(moto.sms()) == 1, timeout_s=20)

        async def sms_recorded() -> bool:  # marked sent once SNS answered: a moment later
            rows = await store.list_deliveries(limit=200)
            return [r.status for r in rows if r.channel == "sms"] == ["sent"]

        await eventually(sms_recorded, "the SMS recorded as sent")
        rows = await store.list_deliveries(limit=200)
        assert sum(r.status == "pending" for r in rows if r.channel == "email") == 100
        assert mute.connections >= 1  # the e-mail lane is stuck on the mute server
    finally:
        await d.stop()
        await task
        await email.close()
        await sms_ch.close()
        await mute.stop()
