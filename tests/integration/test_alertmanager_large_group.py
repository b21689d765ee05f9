"""A real Alertmanager sends one group of thousands of alerts: Tocsin takes it whole."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from tests.services.alertmanager import Alertmanager, webhook_config
from tests.services.http import request, wait_until
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration

GROUP = 4000  # ~1.8 MB as Alertmanager sends it: over the old 1 MiB limit


def test_group_of_4000_alerts_is_accepted_in_one_notification(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """Reproducer 7: a 4,000-alert group with the README's max_alerts gets 200 (was 413)."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    config = webhook_config(f"{tocsin.url}/webhook/alertmanager", group_wait="1s",
                            group_interval="2s") + "    max_alerts: 10000\n"
    am = alertmanager_factory(config)
    starts_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    alerts = [{
        "labels": {"alertname": "NodeFilesystemAlmostFull", "severity": "warning",
                   "team": "infra", "job": "node", "mountpoint": "/var",
                   "instance": f"node-{index:05d}.dc1.example.internal:9100"},
        "annotations": {"summary": f"/var on node-{index:05d} is 93% full",
                        "runbook_url": "https://runbooks.example.internal/filesystem"},
        "startsAt": starts_at,
    } for index in range(GROUP)]
    status, body = request("POST", f"{am.url}/api/v2/alerts", alerts, timeout_s=30)
    assert status == 200, (status, body)
    wait_until(lambda: len(request("GET", f"{am.url}/api/v2/alerts", timeout_s=30)[1]) == GROUP,
               timeout_s=60, what=f"Alertmanager holds the {GROUP} alerts")

    # A notification carries the whole group as it is then: one of them has all alerts.
    wait_until(lambda: _largest_request(tocsin) == GROUP, timeout_s=60,
               what=f"one notification of {GROUP} alerts accepted")
    assert _webhook_failures(am) == 0, am.log()[-2000:]
    rejected = tocsin.metric("tocsin_webhook_rejected_requests_total",
                             'status="413",reason="too_large"')
    assert rejected in (None, 0.0)


def _largest_request(tocsin: TocsinProcess) -> int:
    """Most intake rows written by one webhook request (they share ``received_at``)."""
    with closing(sqlite3.connect(f"file:{tocsin.workdir / 'tocsin.db'}?mode=ro", uri=True,
                                 timeout=5)) as conn:
        row = conn.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM intake"
                           " GROUP BY received_at)").fetchone()
    return int(row[0] or 0)


def _webhook_failures(am: Alertmanager) -> float:
    """Alertmanager's own count of failed webhook notifications."""
    status, text = request("GET", f"{am.url}/metrics")
    assert status == 200
    return sum(float(line.rsplit(" ", 1)[1]) for line in str(text).splitlines()
               if line.startswith("alertmanager_notifications_failed_total{")
               and 'integration="webhook"' in line)
