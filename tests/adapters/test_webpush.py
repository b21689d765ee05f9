"""The push channel end to end against the local push service (VAPID checked, decrypted)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from adapters.webpush import (
    MAX_PLAINTEXT_BYTES,
    WebPushChannel,
    WebPushSettings,
    build_payload,
    headers_for_severity,
    parse_retry_after,
)
from deploy.local.push_service import PushService, create_app
from router.errors import DeliveryError
from router.models import SUBJECT_MAX_CHARS, OutboundMessage, RenderedMessage
from router.push_keys import generate_vapid_keys
from router.store import SqliteStore
from tests.services.ports import free_port
from tests.store.factories import T0

pytestmark = pytest.mark.integration


@dataclass
class Rig:
    service: PushService
    store: SqliteStore
    channel: WebPushChannel


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    port = free_port()
    service = PushService(origin=f"http://127.0.0.1:{port}")
    runner = web.AppRunner(create_app(service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    store = SqliteStore(str(tmp_path / "t.db"))
    await store.start()
    private, _public = generate_vapid_keys()
    channel = WebPushChannel(WebPushSettings(vapid_private_key=private,
                                             vapid_subject="mailto:ops@example.com",
                                             allowed_endpoints=(service.origin,)), store)
    try:
        yield Rig(service, store, channel)
    finally:
        await channel.close()
        await store.close()
        await runner.cleanup()


async def subscribe(rig: Rig, contact: str, label: str = "") -> str:
    info = rig.service.subscribe(label)
    await rig.store.add_push_subscription(contact, info["endpoint"], info["keys"]["p256dh"],
                                          info["keys"]["auth"], now=T0)
    return str(info["endpoint"]).rsplit("/", 1)[1]


def message(contact: str = "ops", *, severity: str = "critical", text: str = "Panne réseau 🔥",
            delivery_id: int = 1) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, idempotency_key=f"key-{delivery_id}",
                           channel="push", recipient=contact, severity=severity, locale="fr",
                           message=RenderedMessage(subject="[ALERTE] HostDown", text=text))


async def test_push_verified_and_decrypted(rig: Rig) -> None:
    """The push service verifies VAPID, decrypts aes128gcm and reads the exact payload."""
    await subscribe(rig, "ops", "laptop")
    await subscribe(rig, "ops", "phone")
    receipt = await rig.channel.send(message())
    assert receipt.provider_id is not None
    assert sorted(r.label for r in rig.service.received) == ["laptop", "phone"]
    for received in rig.service.received:
        payload = json.loads(received.payload)
        assert payload["title"] == "[ALERTE] HostDown"
        assert payload["body"] == "Panne réseau 🔥"
        assert payload["severity"] == "critical"
        assert (received.urgency, received.ttl) == ("high", "3600")
        assert received.vapid_sub == "mailto:ops@example.com"


async def test_fresh_vapid_claims_per_request(rig: Rig) -> None:
    """Two subscriptions on the same service, twice: every request carries a valid JWT."""
    await subscribe(rig, "ops")
    for i in range(3):
        await rig.channel.send(message(delivery_id=i + 1, severity="info"))
    assert [r.urgency for r in rig.service.received] == ["low"] * 3
    assert [status for _, status, _ in rig.service.requests] == [201] * 3


async def test_gone_subscription_is_removed(rig: Rig) -> None:
    """410 removes the subscription and, with no other one, fails permanently."""
    token = await subscribe(rig, "ops")
    rig.service.subscriptions[token].script.append((410, None))
    with pytest.raises(DeliveryError) as info:
        await rig.channel.send(message())
    assert info.value.retryable is False
    assert await rig.store.push_subscriptions("ops") == []
    with pytest.raises(DeliveryError, match="no push subscription"):
        await rig.channel.send(message(delivery_id=2))


async def test_gone_one_of_two_still_sent(rig: Rig) -> None:
    """One gone subscription among two: removed, and the delivery still succeeds."""
    gone = await subscribe(rig, "ops", "old")
    await subscribe(rig, "ops", "new")
    rig.service.subscriptions[gone].script.append((404, None))
    receipt = await rig.channel.send(message())
    assert "1 refused" in receipt.detail
    assert [s.endpoint.endswith(gone) for s in await rig.store.push_subscriptions("ops")] == [
        False]


async def test_rate_limited_carries_retry_after(rig: Rig) -> None:
    """429 is retryable with the push service's Retry-After; the retry is not duplicated."""
    ok = await subscribe(rig, "ops", "ok")
    limited = await subscribe(rig, "ops", "limited")
    rig.service.subscriptions[limited].script.append((429, 3))
    with pytest.raises(DeliveryError) as info:
        await rig.channel.send(message())
    assert info.value.retryable is True
    assert info.value.retry_after_s == 3
    await rig.channel.send(message())  # the retry of the same delivery
    assert sorted(r.label for r in rig.service.received) == ["limited", "ok"]
    assert ok != limited


async def test_oversized_body_is_shortened(rig: Rig) -> None:
    """A body over the 4096-byte limit is cut (with an ellipsis) and still delivered."""
    await subscribe(rig, "ops")
    await rig.channel.send(message(text="é" * 5000))
    [received] = rig.service.received
    assert len(received.payload.encode()) <= MAX_PLAINTEXT_BYTES
    assert json.loads(received.payload)["body"].endswith("…")


def test_payload_limit_enforced() -> None:
    """build_payload never exceeds the plaintext limit, whatever the characters."""
    for text in ("a" * 10_000, "\"\\" * 3000, "🔥" * 2000):
        assert len(build_payload(message(text=text))) <= MAX_PLAINTEXT_BYTES


def test_payload_without_room_is_permanent() -> None:
    """Fields other than the body over the limit fail permanently before sending (a title
    can no longer be that long: a severity taken from a label can)."""
    huge = OutboundMessage(delivery_id=1, idempotency_key="k", channel="push", recipient="ops",
                           severity="x" * 5000, locale="en",
                           message=RenderedMessage(subject="t", text="y"))
    with pytest.raises(DeliveryError) as info:
        build_payload(huge)
    assert info.value.retryable is False


def test_a_long_title_is_capped_and_fits() -> None:
    """A 5000-character subject becomes a 200-character title: the payload fits."""
    long = OutboundMessage(delivery_id=1, idempotency_key="k", channel="push", recipient="ops",
                           severity="critical", locale="en",
                           message=RenderedMessage(subject="x" * 5000, text="y"))
    data = json.loads(build_payload(long))
    assert len(data["title"]) == SUBJECT_MAX_CHARS and data["title"].endswith("…")


def test_severity_headers_and_retry_after_parsing() -> None:
    """Urgency/TTL follow severity; Retry-After takes seconds or an HTTP date."""
    assert headers_for_severity("critical") == ("high", 3600)
    assert headers_for_severity("warning") == ("normal", 14400)
    assert headers_for_severity("whatever") == ("low", 86400)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=T0) == 30.0
    assert parse_retry_after("soon") is None


async def test_endpoint_outside_the_allowlist_is_not_contacted(rig: Rig, tmp_path: Path) -> None:
    """A stored http://127.0.0.1 subscription (older than the check) fails permanently
    for a channel without allowlist, and the push service receives nothing."""
    await subscribe(rig, "ops")
    private, _public = generate_vapid_keys()
    strict = WebPushChannel(WebPushSettings(vapid_private_key=private,
                                            vapid_subject="mailto:ops@example.com"),
                            rig.store)
    try:
        with pytest.raises(DeliveryError, match="endpoint refused: push endpoints must use "
                           "https") as info:
            await strict.send(message())
    finally:
        await strict.close()
    assert info.value.retryable is False
    assert rig.service.requests == [] and rig.service.received == []


async def test_resolver_refuses_a_name_of_a_private_address() -> None:
    """The connector's resolver refuses localhost (127.0.0.1) unless host:port is allowed."""
    from adapters.webpush import _PublicOnlyResolver
    from router.push_endpoints import EndpointPolicy

    resolver = _PublicOnlyResolver(EndpointPolicy(["http://localhost:8089/"]))
    try:
        with pytest.raises(OSError, match="non-public address"):
            await resolver.resolve("localhost", 443)
        assert [r["host"] for r in await resolver.resolve("localhost", 8089)]
    finally:
        await resolver.close()


@pytest.fixture
async def chatty_service() -> AsyncIterator[str]:
    """A push service that refuses with a long, multi-line body (a stack trace page)."""
    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=400, text="Traceback (most recent call last):\n"
                            + "  secret internal detail line\n" * 500)

    app = web.Application()
    app.router.add_post("/push/{token}", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_refusal_body_is_kept_as_a_short_single_line(
    rig: Rig, chatty_service: str,
) -> None:
    """A provider's long multi-line answer is cut to a one-line excerpt in the error."""
    info = rig.service.subscribe()
    endpoint = f"{chatty_service}/push/abc"
    await rig.store.add_push_subscription("ops", endpoint, info["keys"]["p256dh"],
                                          info["keys"]["auth"], now=T0)
    private, _public = generate_vapid_keys()
    channel = WebPushChannel(WebPushSettings(vapid_private_key=private,
                                             vapid_subject="mailto:ops@example.com",
                                             allowed_endpoints=(chatty_service,)), rig.store)
    try:
        with pytest.raises(DeliveryError) as error:
            await channel.send(message())
    finally:
        await channel.close()
    text = str(error.value)
    assert "answered 400: Traceback (most recent call last): secret internal" in text
    assert "\n" not in text
    assert text.count("secret internal detail line") < 10
    assert len(text) < 320
