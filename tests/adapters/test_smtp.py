"""The SMTP channel against a real aiosmtpd server: MIME, TLS, AUTH, error classes."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from adapters.registry import CHANNEL_KINDS, build_channels
from adapters.smtp import SmtpChannel, SmtpSettings, message_id
from router.errors import DeliveryError
from router.models import OutboundMessage, RenderedMessage
from tests.services.ports import free_port
from tests.services.smtp import RecordingHandler

pytestmark = pytest.mark.integration

SUBJECT = "[CRITIQUE] Disque plein sur « serveur-é » — réessayez à 10 h"
TEXT = "Le disque /var est plein à 98 %.\nÉquipe : exploitation, façade ç.\n"
HTML = "<p>Le disque <b>/var</b> est plein à 98&nbsp;% — é à ç</p>"


@dataclass(frozen=True)
class Certs:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    return Certs(cert, key)


def server_tls(certs: Certs) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.cert, certs.key)
    return context


class Server:
    """An aiosmtpd Controller on a free loopback port, with a recording handler."""

    def __init__(self, **kwargs: Any) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **kwargs)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def plain_server() -> Iterator[Server]:
    with Server() as server:
        yield server


def outbound(recipient: str = "alice@example.com", html: str | None = HTML) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=7, idempotency_key="key-7", channel="email", recipient=recipient,
        severity="critical", locale="fr",
        message=RenderedMessage(subject=SUBJECT, text=TEXT, html=html),
    )


def lf(text: str) -> str:
    """SMTP carries CRLF line ends; compare texts with LF."""
    return text.replace("\r\n", "\n")


def settings(port: int, **kwargs: Any) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, from_address="tocsin@example.org",
                        timeout_s=5, **kwargs)


def accept(users: dict[str, str]) -> Any:
    """An aiosmtpd authenticator accepting exactly ``users`` (and recording mechanisms)."""
    mechanisms: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        mechanisms.append(mechanism)
        if isinstance(auth_data, LoginPassword):
            ok = users.get(auth_data.login.decode()) == auth_data.password.decode()
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    authenticator.mechanisms = mechanisms  # type: ignore[attr-defined]
    return authenticator


async def test_plain_delivery_keeps_french_text_and_both_parts(plain_server: Server) -> None:
    """Subject, text and HTML with accents arrive intact as multipart/alternative."""
    receipt = await SmtpChannel(settings(plain_server.port)).send(outbound())
    (mail,) = plain_server.handler.received
    assert mail.rcpt_tos == ["alice@example.com"]
    assert mail.mail_from == "tocsin@example.org"
    assert mail.subject == SUBJECT
    assert lf(mail.text()) == TEXT
    assert lf(mail.html()).strip() == HTML
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["Message-ID"] == message_id("key-7", "tocsin@example.org")
    assert mail.message["Date"] is not None
    assert receipt.provider_id == mail.message["Message-ID"]


async def test_text_only_message_is_single_part(plain_server: Server) -> None:
    """Without HTML the message is a plain text/plain UTF-8 body."""
    await SmtpChannel(settings(plain_server.port)).send(outbound(html=None))
    (mail,) = plain_server.handler.received
    assert mail.message.get_content_type() == "text/plain"
    assert lf(mail.text()) == TEXT


def test_message_id_is_stable_per_idempotency_key() -> None:
    """A resend of one delivery carries the same Message-ID; another delivery does not."""
    assert message_id("k", "a@b.org") == message_id("k", "a@b.org")
    assert message_id("k", "a@b.org") != message_id("k2", "a@b.org")
    assert message_id("k", "a@b.org").endswith("@b.org>")


async def test_starttls_with_private_ca(certs: Certs) -> None:
    """STARTTLS succeeds when the server's certificate is trusted through ca_file."""
    with Server(tls_context=server_tls(certs), require_starttls=True) as server:
        channel = SmtpChannel(settings(server.port, security="starttls",
                                       ca_file=str(certs.cert)))
        await channel.send(outbound())
        assert server.handler.received[0].subject == SUBJECT


async def test_implicit_tls_with_private_ca(certs: Certs) -> None:
    """Implicit TLS (smtps) succeeds when the certificate is trusted through ca_file."""
    with Server(ssl_context=server_tls(certs)) as server:
        channel = SmtpChannel(settings(server.port, security="tls", ca_file=str(certs.cert)))
        await channel.send(outbound())
        assert lf(server.handler.received[0].text()) == TEXT


async def test_untrusted_certificate_is_permanent(certs: Certs) -> None:
    """A certificate not signed by a trusted CA is a configuration error, not retried."""
    with Server(ssl_context=server_tls(certs)) as server:
        channel = SmtpChannel(settings(server.port, security="tls"))
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound())
    assert not info.value.retryable
    assert server.handler.received == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth_mechanisms(certs: Certs, mechanism: str) -> None:
    """AUTH PLAIN and AUTH LOGIN over STARTTLS log in and deliver."""
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    authenticator = accept({"tocsin": "s3cret é"})
    with Server(tls_context=server_tls(certs), authenticator=authenticator,
                auth_exclude_mechanism=[other]) as server:
        channel = SmtpChannel(settings(server.port, security="starttls",
                                       ca_file=str(certs.cert), username="tocsin",
                                       password="s3cret é"))
        await channel.send(outbound())
        assert len(server.handler.received) == 1
    assert authenticator.mechanisms == [mechanism]


async def test_auth_rejected_is_permanent() -> None:
    """535 authentication failed is a misconfiguration: permanent."""
    with Server(authenticator=accept({"tocsin": "right"}), auth_require_tls=False) as server:
        channel = SmtpChannel(settings(server.port, username="tocsin", password="wrong"))
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound())
    assert not info.value.retryable
    assert "535" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("550 5.1.1 No such user here", False), ("451 4.3.0 Try again later", True)],
)
async def test_recipient_refusal_is_classified(
    plain_server: Server, reply: str, retryable: bool
) -> None:
    """A 5xx refusal of the recipient is permanent, a 4xx one retryable."""
    plain_server.handler.refuse["bob@example.com"] = reply
    with pytest.raises(DeliveryError) as info:
        await SmtpChannel(settings(plain_server.port)).send(outbound("bob@example.com"))
    assert info.value.retryable is retryable
    assert reply.split()[0] in str(info.value)
    assert plain_server.handler.received == []


class RejectingData(RecordingHandler):
    """Accepts recipients, then answers DATA with a scripted reply."""

    reply = "554 5.6.0 Message rejected"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.reply


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("554 5.6.0 Message rejected", False), ("452 4.3.1 Insufficient storage", True)],
)
async def test_data_rejection_is_classified(reply: str, retryable: bool) -> None:
    """A 5xx answer to DATA is permanent, a 4xx answer retryable."""
    handler = RejectingData()
    handler.reply = reply
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(DeliveryError) as info:
            await SmtpChannel(settings(port)).send(outbound())
    finally:
        controller.stop()
    assert info.value.retryable is retryable


async def test_connection_refused_is_retryable() -> None:
    """Nothing listening on the port: retryable."""
    with pytest.raises(DeliveryError) as info:
        await SmtpChannel(settings(free_port())).send(outbound())
    assert info.value.retryable
    assert "127.0.0.1" in str(info.value)


async def test_silent_server_times_out_retryably() -> None:
    """A server that never greets makes the send time out: retryable."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, timeout_s=0.3,
                                           from_address="tocsin@example.org"))
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound())
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.retryable


async def test_starttls_required_but_not_offered_is_permanent(plain_server: Server) -> None:
    """security=starttls against a server without STARTTLS never sends in clear text."""
    channel = SmtpChannel(settings(plain_server.port, security="starttls"))
    with pytest.raises(DeliveryError) as info:
        await channel.send(outbound())
    assert not info.value.retryable
    assert plain_server.handler.received == []


def test_settings_are_validated() -> None:
    """Half-given credentials and unknown security modes are refused at wiring time."""
    with pytest.raises(ValueError, match="together"):
        SmtpSettings(username="u")
    with pytest.raises(ValueError, match="security"):
        SmtpSettings(security="ssl")  # type: ignore[arg-type]


def test_registry_wires_email_only_when_configured() -> None:
    """The explicit table builds the email channel from SMTP settings, nothing otherwise."""
    assert CHANNEL_KINDS == frozenset({"email", "sms", "topic", "push"})
    assert build_channels(None) == {}
    channels = build_channels(settings(25))
    assert set(channels) == {"email"}
    assert channels["email"].name == "email"


def test_free_port_helper_gives_unused_port() -> None:
    """Sanity: the port used for 'connection refused' really has no listener."""
    port = free_port()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


async def test_long_server_reply_is_kept_as_an_excerpt(plain_server: Server) -> None:
    """A server's long refusal text is cut to a short excerpt in the error."""
    plain_server.handler.refuse["bob@example.com"] = "550 5.1.1 " + "no such user here " * 30
    with pytest.raises(DeliveryError) as info:
        await SmtpChannel(settings(plain_server.port)).send(outbound("bob@example.com"))
    text = str(info.value)
    assert text.startswith("recipient refused: 550 5.1.1 no such user here")
    assert text.endswith("…")
    assert len(text) < 260
