"""An Alertmanager HA pair sending to two Tocsin instances on one PostgreSQL pages once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.services.alertmanager import Alertmanager, webhook_config
from tests.services.http import request, wait_until
from tests.services.postgres import fresh_database_url
from tests.services.quiescence import wait_quiescent
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration

NAMES = [f"PairAlert{i}" for i in range(5)]


def test_both_replicas_to_two_instances_page_each_recipient_once(
    tmp_path: Path, smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """Each replica of the pair gets every alert (no gossip between them) and sends to
    its own Tocsin instance; the shared incidents make one first and one resolved notice
    per incident, the other copies are duplicates on the timeline."""
    url = fresh_database_url()
    tocsins = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        tocsins.append(tocsin_factory(
            smtp_port=smtp_server.port, workdir=workdir,
            extra={"state_url": url,
                   "instance": {"id": f"tocsin-{name}", "heartbeat_s": 0.5}}).start())
    pair = [alertmanager_factory(webhook_config(f"{t.url}/webhook/alertmanager"))
            for t in tocsins]
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    for name in NAMES:
        for am in pair:
            am.post_alert({"alertname": name, "instance": "node-1"}, {"summary": name},
                          starts_at=starts_at)
    smtp_server.handler.wait_for(len(NAMES), timeout_s=30)
    for tocsin in tocsins:
        wait_quiescent(tocsin)
    for name in NAMES:
        for am in pair:
            am.post_alert({"alertname": name, "instance": "node-1"}, {"summary": name},
                          starts_at=starts_at, resolved=True)
    smtp_server.handler.wait_for(2 * len(NAMES), timeout_s=30)
    for tocsin in tocsins:
        wait_quiescent(tocsin)

    pages = Counter(("RESOLVED" in mail.subject.upper(),
                     next(n for n in NAMES if n in mail.subject), tuple(mail.rcpt_tos))
                    for mail in smtp_server.received)
    assert set(pages.values()) == {1}, pages
    assert len(pages) == 2 * len(NAMES)
    # Both replicas' webhooks reached Tocsin: each incident's timeline has the copies.
    code, listed = request("GET", f"{tocsins[1].url}/api/v1/incidents?limit=100")
    assert code == 200 and len(listed) == len(NAMES)
    for incident in listed:
        code, detail = request("GET", f"{tocsins[0].url}/api/v1/incidents/{incident['id']}")
        assert code == 200
        assert any(e["event"] == "duplicate" for e in detail["timeline"]), detail["timeline"]
    # Each instance names itself and sees the other; both claimed intake rows.
    for tocsin, me in zip(tocsins, ("tocsin-a", "tocsin-b"), strict=True):
        wait_until(lambda t=tocsin: t.metric("tocsin_instances") == 2,
                   what="both instances seen")
        assert tocsin.metric("tocsin_rules_hash_mismatch") == 0
        code, ready = request("GET", f"{tocsin.url}/readyz")
        assert code == 200 and ready["instance"]["id"] == me
        assert ready["instance"]["store"] == "postgresql"
        assert ready["instance"]["instances"] == ["tocsin-a", "tocsin-b"]
    claimed = sum(t.metric("tocsin_claims_total", 'role="intake"') or 0 for t in tocsins)
    assert claimed >= 4 * len(NAMES)  # firing and resolved, from both replicas
