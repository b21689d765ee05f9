"""A local SNS for the tests: an RSA key, its self-signed certificate served over HTTP on
127.0.0.1 (a real aiohttp server), messages signed as SNS signs them, a SubscribeURL that
records its GETs, and an Acknowledger that records what it is asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from router.acks import AckBy, AckResult, PendingAck
from router.acks.contract import AckChannel
from router.acks.sns_dev import (
    SigningIdentity,
    inbound_sms_message,
    new_signing_identity,
    signed_message,
)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:tocsin-sms-replies"
OUR_NUMBER = "+33700000001"
T0 = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)

_IDENTITY: SigningIdentity | None = None


def identity() -> SigningIdentity:
    """One key for the whole test session (2048-bit RSA takes ~50 ms to make)."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = new_signing_identity(T0.replace(year=2020), days=365 * 20)
    return _IDENTITY


@dataclass
class SnsPeer:
    """The certificate server and SubscribeURL endpoint, with what they were asked."""

    base: str
    cert_gets: int = 0
    confirm_gets: list[str] = field(default_factory=list)

    @property
    def cert_url(self) -> str:
        return f"{self.base}/SimpleNotificationService-test.pem"

    @property
    def pattern(self) -> str:
        """The ``cert_url_pattern`` / ``subscribe_url_pattern`` that trusts this server."""
        return "^" + self.base.replace(".", r"\.") + "/"

    def notification(self, text: str, *, phone: str = "+33612345678", at: datetime = T0,
                     version: str = "2", topic: str = TOPIC, message_id: str | None = None,
                     inbound_id: str | None = None, cert_url: str | None = None,
                     subject: str | None = None) -> dict[str, str]:
        """A signed Notification carrying an inbound SMS."""
        return signed_message(
            identity().key_pem, message_type="Notification", topic_arn=topic,
            message=inbound_sms_message(phone, text, destination=OUR_NUMBER,
                                        inbound_message_id=inbound_id),
            cert_url=cert_url or self.cert_url, at=at, signature_version=version,
            message_id=message_id, subject=subject)

    def confirmation(self, *, kind: str = "SubscriptionConfirmation", version: str = "2",
                     subscribe_url: str | None = None, at: datetime = T0) -> dict[str, str]:
        """A signed (Un)SubscriptionConfirmation whose SubscribeURL is this server's."""
        return signed_message(
            identity().key_pem, message_type=kind, topic_arn=TOPIC,
            message="You have chosen to subscribe to the topic.", cert_url=self.cert_url,
            at=at, signature_version=version, token="tok-123",
            subscribe_url=subscribe_url or f"{self.base}/?Action=ConfirmSubscription&Token=tok-123")


@pytest.fixture(name="sns_peer")
async def sns_peer_fixture() -> AsyncIterator[SnsPeer]:
    """The local SNS certificate server on 127.0.0.1 (a free port)."""
    peer = SnsPeer(base="")

    async def cert(_request: web.Request) -> web.Response:
        peer.cert_gets += 1
        return web.Response(body=identity().cert_pem, content_type="application/x-pem-file")

    async def confirm(request: web.Request) -> web.Response:
        peer.confirm_gets.append(request.query_string)
        return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")

    app = web.Application()
    app.router.add_get("/SimpleNotificationService-test.pem", cert)
    app.router.add_get("/", confirm)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    peer.base = str(server.make_url("")).rstrip("/")
    yield peer
    await server.close()


@dataclass
class RecordingAcknowledger:
    """An Acknowledger that answers from ``pending`` and records every call."""

    pending: dict[str, list[PendingAck]] = field(default_factory=dict)
    acknowledged: list[tuple[str, AckBy, str]] = field(default_factory=list)
    already_by: dict[str, str] = field(default_factory=dict)  # incident → who took it
    opt_outs: list[tuple[str, str]] = field(default_factory=list)
    replies: list[tuple[str, str]] = field(default_factory=list)

    async def pending_for(self, channel: str, address: str, now: datetime) -> list[PendingAck]:
        assert channel == "sms"
        return list(self.pending.get(address, []))

    async def acknowledge(self, incident_id: str, *, by: AckBy, channel: AckChannel,
                          at: datetime) -> AckResult:
        if incident_id in self.already_by:
            return AckResult("already", incident_id,
                             acknowledged_by=AckBy(self.already_by[incident_id]))
        self.acknowledged.append((incident_id, by, channel))
        return AckResult("acknowledged", incident_id, acknowledged_by=by, acknowledged_at=at,
                         ack_channel=channel)

    async def record_opt_out(self, phone: str, keyword: str, at: datetime) -> list[str]:
        self.opt_outs.append((phone, keyword))
        return [p.contact_id for p in self.pending.get(phone, [])]

    async def send_reply(self, phone: str, text: str, at: datetime) -> None:
        self.replies.append((phone, text))


def pending(incident_id: str, code: str, title: str, *, contact: str = "alice",
            minute: int = 0) -> PendingAck:
    """One pending request for ``contact``."""
    return PendingAck(incident_id=incident_id, code=code, contact_id=contact,
                      contact_name=contact.title(), title=title,
                      asked_at=T0.replace(minute=minute))


def body(message: dict[str, str]) -> bytes:
    """The bytes SNS posts."""
    return orjson.dumps(message)
