"""A crash never loses an accepted alert and never sends one twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services.http import wait_until
from tests.services.ports import free_port
from tests.services.quiescence import wait_quiescent
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parents[1] / "fixtures/alertmanager/01-firing-single.json"


def test_sigkill_before_send_delivers_exactly_once_after_restart(
    tmp_path: Path, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Accepted (200) while SMTP is down, SIGKILLed, restarted: one email, not zero or two."""
    smtp_port = free_port()  # nothing listens yet: sends fail with connection refused
    tocsin = tocsin_factory(smtp_port=smtp_port).start()
    status, answer = tocsin.post_webhook(json.loads(FIXTURE.read_text()))
    assert status == 200, answer
    wait_until(
        lambda: [d for d in tocsin.deliveries(status="pending") if d["attempts"] >= 1],
        what="a failed first attempt",
    )
    tocsin.kill()

    smtp = SmtpServer(port=smtp_port).start()
    try:
        restarted = tocsin_factory(smtp_port=smtp_port, workdir=tmp_path).start()
        smtp.handler.wait_for(1, timeout_s=20)
        wait_until(lambda: restarted.deliveries(status="sent"), what="delivery marked sent")
        assert not restarted.deliveries(status="pending")
        assert len(smtp.received) == 1
        assert smtp.received[0].rcpt_tos == ["ops@example.com"]
    finally:
        smtp.stop()


def test_sigkill_after_send_does_not_send_again(
    tmp_path: Path, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Once a delivery is recorded as sent, a SIGKILL and a restart do not resend it."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    status, _ = tocsin.post_webhook(json.loads(FIXTURE.read_text()))
    assert status == 200
    smtp_server.handler.wait_for(1)
    wait_until(lambda: tocsin.deliveries(status="sent"), what="delivery marked sent")
    tocsin.kill()

    restarted = tocsin_factory(smtp_port=smtp_server.port, workdir=tmp_path).start()
    # The same webhook again (Alertmanager re-sends after a restart): still one email.
    status, _ = restarted.post_webhook(json.loads(FIXTURE.read_text()))
    assert status == 200
    wait_quiescent(restarted)  # routed, flushed, nothing left to send
    assert not restarted.deliveries(status="pending")
    assert len(smtp_server.received) == 1


def test_sigkill_with_unrouted_intake_routes_it_after_restart(
    tmp_path: Path, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Alerts persisted but not yet routed when the process dies are routed on restart."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    body = json.loads(FIXTURE.read_text())
    status, _ = tocsin.post_webhook(body)
    assert status == 200
    tocsin.kill()  # maybe before routing, maybe after: either way exactly one email
    restarted = tocsin_factory(smtp_port=smtp_server.port, workdir=tmp_path).start()
    smtp_server.handler.wait_for(1, timeout_s=20)
    wait_quiescent(restarted)  # intake routed, incidents flushed, outbox drained
    assert len(smtp_server.received) == 1


def test_sigterm_drains_and_exits_zero(
    smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """SIGTERM: stop accepting, finish in-flight work, exit status 0."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    status, _ = tocsin.post_webhook(json.loads(FIXTURE.read_text()))
    assert status == 200
    assert tocsin.terminate() == 0
