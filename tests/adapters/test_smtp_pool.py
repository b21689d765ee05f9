"""The email channel reuses SMTP connections, and never loses a message to a stale one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from adapters.smtp import SmtpChannel, SmtpSettings
from router.errors import DeliveryError
from router.models import OutboundMessage, RenderedMessage
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


@dataclass
class CountingHandler:
    """Accepts every message; records which connection (client port) carried it."""

    peers: list[int] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    quits: int = 0
    closed: list[int] = field(default_factory=list)  # client ports of connections ended
    refuse_second_mail_421: bool = False  # one message per connection
    refuse_every_mail_421: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    _mails: dict[int, int] = field(default_factory=dict)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: Any) -> str:
        port = int(session.peer[1])
        with self.lock:
            self._mails[port] = self._mails.get(port, 0) + 1
            second = self._mails[port] > 1
        if self.refuse_every_mail_421 or (self.refuse_second_mail_421 and second):
            return "421 4.3.2 Too many messages on this connection, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        subject = next((line.split(":", 1)[1].strip()
                        for line in envelope.content.decode().splitlines()
                        if line.startswith("Subject:")), "")
        with self.lock:
            self.peers.append(int(session.peer[1]))
            self.subjects.append(subject)
        return "250 Accepted"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"

    def connection_closed(self, port: int) -> None:
        with self.lock:
            self.closed.append(port)


class _TrackingSMTP(SMTP):
    """aiosmtpd's session, telling the handler when its connection is gone."""

    def connection_lost(self, error: Exception | None) -> None:
        assert self.session is not None
        peer: Any = self.session.peer  # (host, port) for a TCP client
        port = int(peer[1])
        super().connection_lost(error)
        self.event_handler.connection_closed(port)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _TrackingSMTP(self.handler, **self.SMTP_kwargs)


async def until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` (state kept by the server thread) until true; fail after ~30 s."""
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


class Server:
    def __init__(self, handler: CountingHandler, **smtp_parameters: Any) -> None:
        self.port = free_port()
        self.handler = handler
        self.controller = _Controller(handler, hostname="127.0.0.1", port=self.port,
                                      **smtp_parameters)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=n, idempotency_key=f"key-{n}", channel="email",
        recipient="alice@example.com", severity="critical", locale="en",
        message=RenderedMessage(subject=f"message {n}", text="body", html=None),
    )


def channel(port: int, **kwargs: Any) -> SmtpChannel:
    return SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, timeout_s=5,
                                    from_address="tocsin@example.org", **kwargs))


async def test_sequential_messages_share_one_connection() -> None:
    """Three messages in a row travel on one connection."""
    with Server(CountingHandler()) as server:
        email = channel(server.port)
        for n in range(3):
            await email.send(message(n))
        await email.close()
    assert server.handler.subjects == ["message 0", "message 1", "message 2"]
    assert len(set(server.handler.peers)) == 1


async def test_pool_size_zero_opens_a_connection_per_message() -> None:
    """pool_size: 0 restores one connection per message, each closed with QUIT."""
    with Server(CountingHandler()) as server:
        email = channel(server.port, pool_size=0)
        for n in range(3):
            await email.send(message(n))
    assert len(set(server.handler.peers)) == 3
    assert server.handler.quits == 3


async def test_connection_closed_by_the_server_is_replaced() -> None:
    """The server drops the idle connection (its command timeout); the next message
    goes out on a new connection, without an error."""
    with Server(CountingHandler(), timeout=0.3) as server:
        email = channel(server.port)
        await email.send(message(1))
        [port] = server.handler.peers
        await until(lambda: port in server.handler.closed, "the server dropped the connection")
        await email.send(message(2))
        await email.close()
    assert server.handler.subjects == ["message 1", "message 2"]
    assert len(set(server.handler.peers)) == 2


async def test_421_on_a_reused_connection_retries_on_a_fresh_one() -> None:
    """A server that serves one message per connection answers 421 on reuse: the same
    message is sent again on a new connection and arrives once."""
    with Server(CountingHandler(refuse_second_mail_421=True)) as server:
        email = channel(server.port)
        for n in range(3):
            await email.send(message(n))
        await email.close()
    assert server.handler.subjects == ["message 0", "message 1", "message 2"]
    assert len(set(server.handler.peers)) == 3


async def test_421_on_a_fresh_connection_is_a_retryable_error() -> None:
    """421 on a connection just opened is the server's answer, not staleness: the
    delivery fails retryably after one fresh attempt instead of looping."""
    handler = CountingHandler()
    with Server(handler) as server:
        email = channel(server.port)
        await email.send(message(0))
        handler.refuse_every_mail_421 = True
        with pytest.raises(DeliveryError) as caught:
            await email.send(message(1))
        await email.close()
    assert caught.value.retryable
    assert server.handler.subjects == ["message 0"]


async def test_idle_connection_older_than_pool_idle_s_is_not_reused() -> None:
    """After pool_idle_s the idle connection is closed (QUIT) and a new one is used."""
    with Server(CountingHandler()) as server:
        email = channel(server.port, pool_idle_s=0.2)
        await email.send(message(1))
        await asyncio.sleep(0.5)
        await email.send(message(2))
        await email.close()
    assert len(set(server.handler.peers)) == 2
    assert server.handler.quits == 2


async def test_close_quits_idle_connections_and_keeps_at_most_pool_size() -> None:
    """Eight concurrent messages open several connections; the pool keeps at most
    pool_size of them, and close() ends each with QUIT."""
    with Server(CountingHandler()) as server:
        email = channel(server.port, pool_size=2)
        await asyncio.gather(*(email.send(message(n)) for n in range(8)))
        opened = len(set(server.handler.peers))
        await email.close()
        await until(lambda: set(server.handler.peers) <= set(server.handler.closed),
                    "every connection closed")
    assert sorted(server.handler.subjects) == sorted(f"message {n}" for n in range(8))
    assert opened >= 2
    assert server.handler.quits == opened
