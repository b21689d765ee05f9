"""The dispatcher through the real SMTP adapter to a real aiosmtpd server."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from adapters.smtp import SmtpChannel, SmtpSettings
from router.clock import FakeClock
from router.store import SqliteStore
from router.workers.dispatcher import Dispatcher
from router.workers.retry import RetryPolicy
from tests.services.ports import free_port
from tests.services.smtp import SmtpServer
from tests.store.factories import T0, make_delivery

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def email_dispatcher(store: SqliteStore, clock: FakeClock, port: int) -> Dispatcher:
    channel = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, timeout_s=5,
                                       from_address="tocsin@example.org"))
    return Dispatcher(store, {"email": channel}, clock=clock,
                      policy=RetryPolicy(initial_s=1, max_s=10), rng=random.Random(1))


async def test_outbox_rows_become_emails_and_refusals_fail(
    store: SqliteStore, clock: FakeClock, smtp: SmtpServer
) -> None:
    """Accepted mail is marked sent; a 550 recipient is marked failed with the reply."""
    smtp.handler.refuse["gone@example.com"] = "550 5.1.1 No such user"
    await store.commit_plan(
        [], [make_delivery("ok"), make_delivery("gone", recipient="gone@example.com")],
        now=T0, deadline_s=600)
    assert await email_dispatcher(store, clock, smtp.port).dispatch_once() == 2
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["ops@example.com"]
    assert mail.subject == "Panne é"
    by_key = {d.idempotency_key: d for d in await store.list_deliveries()}
    assert by_key["ok"].status == "sent"
    assert by_key["ok"].provider_id == mail.message["Message-ID"]
    assert by_key["gone"].status == "failed"
    assert "550" in (by_key["gone"].last_error or "")


async def test_server_down_then_up_delivers_once(store: SqliteStore, clock: FakeClock) -> None:
    """Connection refused is retried; once the server is up the email goes out once."""
    port = free_port()
    await store.commit_plan([], [make_delivery("k")], now=T0, deadline_s=600)
    dispatcher = email_dispatcher(store, clock, port)
    await dispatcher.dispatch_once()
    (row,) = await store.list_deliveries()
    assert row.status == "pending"
    assert "cannot reach SMTP server" in (row.last_error or "")
    server = SmtpServer(port=port).start()
    try:
        clock.advance(60)
        assert await dispatcher.dispatch_once() == 1
        clock.advance(3600)
        assert await dispatcher.dispatch_once() == 0
        assert len(server.received) == 1
    finally:
        server.stop()
