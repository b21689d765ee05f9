"""A real Alertmanager sends real webhooks to Tocsin, which sends real email."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services.alertmanager import Alertmanager, webhook_config
from tests.services.http import wait_until
from tests.services.quiescence import wait_quiescent
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration

TOKEN = "s3cr3t-token"


def test_firing_then_resolved_reach_the_inbox(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """AM webhook (bearer auth) → shipped rules → email; then the resolved notice."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port, bearer_token=TOKEN).start()
    am = alertmanager_factory(
        webhook_config(f"{tocsin.url}/webhook/alertmanager", bearer_token=TOKEN)
    )
    starts_at = datetime.now(UTC) - timedelta(minutes=2)
    labels = {"alertname": "HostDown", "instance": "node-1", "severity": "critical",
              "team": "infra"}
    summary = "node-1 injoignable : vérifiez l'alimentation électrique"
    am.post_alert(labels, {"summary": summary}, starts_at=starts_at)

    [firing] = smtp_server.handler.wait_for(1, timeout_s=20)
    assert firing.rcpt_tos == ["ops@example.com"]
    assert "HostDown" in firing.subject and "node-1" in firing.subject
    assert "critical" in firing.subject.lower()
    assert summary in firing.text()  # UTF-8 survived the whole path
    assert summary.replace("'", "&#39;") in firing.html() or summary in firing.html()

    am.post_alert(labels, {"summary": summary}, starts_at=starts_at, resolved=True)
    mails = smtp_server.handler.wait_for(2, timeout_s=20)
    resolved = mails[1]
    assert resolved.rcpt_tos == ["ops@example.com"]
    assert "RESOLVED" in resolved.subject.upper()
    assert "HostDown" in resolved.subject

    wait_until(
        lambda: len(tocsin.deliveries(status="sent")) == 2, what="both deliveries marked sent"
    )
    sent = tocsin.deliveries(status="sent")
    assert sorted(d["phase"] for d in sent) == ["firing", "resolved"]
    assert all("@" in d["recipient"] and "ops@" not in d["recipient"] for d in sent)


def test_french_recipient_gets_french_accented_mail(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """A route to a French-speaking audience renders the fr template, accents intact."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    am = alertmanager_factory(webhook_config(f"{tocsin.url}/webhook/alertmanager"))
    am.post_alert(
        {"alertname": "PostgresDown", "service": "billing", "severity": "critical",
         "instance": "db-1"},
        {"summary": "La base de facturation ne répond plus"},
    )
    [french] = smtp_server.handler.wait_for(1, timeout_s=20)
    assert french.rcpt_tos == ["astreinte@example.fr"]
    assert french.subject == "[ALERTE:critical] PostgresDown sur db-1"
    assert "L'alerte « PostgresDown » est déclenchée (critical) sur db-1." in french.text()
    assert "La base de facturation ne répond plus" in french.text()


def test_duplicate_webhooks_notify_once(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """The same webhook body posted twice (an HA pair, or a retry) pages once."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    body = json.loads(
        (Path(__file__).parents[1] / "fixtures/alertmanager/01-firing-single.json").read_text()
    )
    for _ in range(2):
        status, answer = tocsin.post_webhook(body)
        assert status == 200, answer
    smtp_server.handler.wait_for(1)
    # Both requests routed and everything planned dispatched: then count.
    wait_quiescent(tocsin)  # intake routed, incidents flushed, outbox drained
    assert len(smtp_server.received) == len(tocsin.deliveries(status="sent")) == 1
