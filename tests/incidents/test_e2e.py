"""Incidents end to end: real Alertmanager(s) → Tocsin → real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.services.alertmanager import Alertmanager, webhook_config
from tests.services.http import request, wait_until
from tests.services.quiescence import wait_quiescent
from tests.services.smtp import SmtpServer
from tests.services.tocsin import REPO, TocsinProcess

pytestmark = pytest.mark.integration


def incidents(tocsin: TocsinProcess, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    code, body = request("GET", f"{tocsin.url}/api/v1/incidents?{qs}")
    assert code == 200, body
    assert isinstance(body, list)
    return body


def incident(tocsin: TocsinProcess, incident_id: str) -> dict[str, Any]:
    code, body = request("GET", f"{tocsin.url}/api/v1/incidents/{incident_id}")
    assert code == 200, body
    assert isinstance(body, dict)
    return body


def rules_with(tmp_path: Path, extra_yaml: str) -> list[str]:
    """The shipped rules plus one more file (route overrides go in their own file)."""
    folder = tmp_path / "rules"
    shutil.copytree(REPO / "rules", folder, ignore=shutil.ignore_patterns("tests"))
    (folder / "zz-test.yaml").write_text(extra_yaml)
    return [str(folder)]


def post_alerts(am: Alertmanager, labels: list[dict[str, str]], starts_at: datetime, *,
                resolved: bool = False) -> None:
    """POST several alerts in one request (Alertmanager then sends them in one webhook)."""
    now = datetime.now(UTC)
    body = [{"labels": lab, "annotations": {"summary": "down"},
             "startsAt": starts_at.isoformat(),
             **({"endsAt": (now - timedelta(seconds=1)).isoformat()} if resolved else {})}
            for lab in labels]
    status, answer = request("POST", f"{am.url}/api/v2/alerts", body)
    assert status == 200, answer


def test_two_alertmanagers_each_notice_once(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """Two unclustered Alertmanagers send the same groups: one firing and one resolved mail."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    url = f"{tocsin.url}/webhook/alertmanager"
    ams = [alertmanager_factory(webhook_config(url)) for _ in range(2)]
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    labels = [{"alertname": "HostDown", "instance": f"node-{i}", "severity": "critical"}
              for i in (1, 2)]
    for am in ams:
        post_alerts(am, labels, starts_at)
    [firing] = smtp_server.handler.wait_for(1, timeout_s=30)
    assert firing.rcpt_tos == ["ops@example.com"]
    assert "node-1" in firing.subject and "node-2" in firing.subject
    # Both replicas' duplicates reached Tocsin and are in the timeline.
    [inc] = incidents(tocsin)
    wait_until(lambda: sum(e["event"] == "duplicate"
                           for e in incident(tocsin, inc["id"])["timeline"]) >= 2,
               what="duplicates recorded", timeout_s=30)

    for am in ams:
        post_alerts(am, labels, starts_at, resolved=True)
    mails = smtp_server.handler.wait_for(2, timeout_s=30)
    assert "RESOLVED" in mails[1].subject
    wait_until(lambda: incidents(tocsin, state="resolved"), what="incident resolved",
               timeout_s=30)
    # Both replicas' firing and resolved webhooks (2 alerts each) are in and nothing is
    # left to route, flush or send: a late duplicate notice would be in the outbox now.
    wait_quiescent(tocsin, alerts_accepted=8)
    assert len(smtp_server.received) == 2
    detail = incident(tocsin, inc["id"])
    emails = [n for n in detail["notifications"] if n["channel"] == "email"]
    assert [n["phase"] for n in emails] == ["firing", "resolved"]
    assert all(n["status"] == "sent" for n in emails)
    assert "ops@" not in str(detail["notifications"])  # recipients masked


def test_inhibited_warning_is_not_mailed(
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """ServiceDown (critical) inhibits HighLatency of the same service: one mail only."""
    tocsin = tocsin_factory(smtp_port=smtp_server.port).start()
    am = alertmanager_factory(webhook_config(f"{tocsin.url}/webhook/alertmanager"))
    am.post_alert({"alertname": "ServiceDown", "service": "pay", "severity": "critical"})
    smtp_server.handler.wait_for(1, timeout_s=30)
    am.post_alert({"alertname": "HighLatency", "service": "pay", "severity": "warning"})
    wait_until(lambda: any(a["inhibited"] for i in incidents(tocsin)
                           for a in incident(tocsin, i["id"])["alerts"]),
               what="HighLatency recorded as inhibited", timeout_s=30)
    wait_quiescent(tocsin)  # the flush that saw it inhibited planned nothing to send
    assert [m.subject for m in smtp_server.received] == ["[FIRING:critical] ServiceDown on pay"]


def test_follow_up_then_resolved_with_duration(
    tmp_path: Path,
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    """Still open after follow_up_after: one follow-up mail, then the resolved mail."""
    rules = rules_with(tmp_path, (
        "audiences:\n  longrun:\n    contacts:\n"
        "      - {id: lr, name: Long Run, email: longrun@example.com}\n"))
    routes = Path(rules[0]) / "routes.yaml"
    routes.write_text(routes.read_text().replace(
        "  routes:\n", "  routes:\n"
        "    - matchers: ['alertname=\"Slow\"']\n"
        "      audiences: [longrun]\n"
        "      follow_up_after: 2m\n"
        "      max_follow_ups: 1\n", 1))
    tocsin = tocsin_factory(smtp_port=smtp_server.port, rules=rules).start()
    am = alertmanager_factory(webhook_config(f"{tocsin.url}/webhook/alertmanager"))
    starts_at = datetime.now(UTC)
    am.post_alert({"alertname": "Slow", "instance": "db-9"}, starts_at=starts_at)
    mails = smtp_server.handler.wait_for(2, timeout_s=40)
    assert mails[0].subject == "[FIRING:warning] Slow on db-9"
    assert mails[1].subject == "[STILL FIRING:warning] Slow on db-9"
    assert "takes longer than expected" in mails[1].text()
    am.post_alert({"alertname": "Slow", "instance": "db-9"}, starts_at=starts_at, resolved=True)
    mails = smtp_server.handler.wait_for(3, timeout_s=40)
    assert mails[2].subject == "[RESOLVED] Slow on db-9"
    assert "duration" in mails[2].text()
    assert {m.rcpt_tos[0] for m in mails} == {"longrun@example.com"}


def test_sigkill_during_group_wait_notifies_once_after_restart(
    tmp_path: Path,
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """Killed while an incident waits for group_wait: after restart exactly one mail."""
    fixture = json.loads((REPO / "tests/fixtures/alertmanager/01-firing-single.json")
                         .read_text())
    tocsin = tocsin_factory(smtp_port=smtp_server.port, timer_scale=1.0).start()
    status, _ = tocsin.post_webhook(fixture)
    assert status == 200
    wait_until(lambda: incidents(tocsin), what="incident opened", timeout_s=20)
    assert smtp_server.received == []  # group_wait (5 s) is running
    tocsin.kill()
    restarted = tocsin_factory(smtp_port=smtp_server.port, workdir=tmp_path,
                               timer_scale=1.0).start()
    smtp_server.handler.wait_for(1, timeout_s=40)
    wait_quiescent(restarted)  # the replayed group_wait planned (and sent) nothing else
    assert len(smtp_server.received) == 1


def _quiet_rules(tmp_path: Path, start: datetime, end: datetime) -> list[str]:
    return rules_with(tmp_path, (
        "quiet_hours:\n  test-window:\n"
        f"    - times: [{{start_time: \"{start:%H:%M}\", end_time: \"{end:%H:%M}\"}}]\n"
        "audiences:\n  sleepers:\n    quiet_hours: test-window\n    contacts:\n"
        "      - {id: s1, name: Sleeper, email: sleeper@example.com, timezone: UTC}\n"))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_sigkill_during_quiet_hours_deferral_delivers_once_at_window_end(
    tmp_path: Path,
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """A held (quiet-hours) notice survives a SIGKILL and is mailed once when the window ends.

    Quiet windows have minute resolution: Tocsin runs under a shifted wall clock
    (libfaketime) instead of the test waiting for the next minute. The first process
    starts 45 s before the window ends, holds the notice and is killed; the second
    starts 5 s before the end and must send it at the end, once.
    """
    real = datetime.now(UTC).replace(second=0, microsecond=0)
    end = real + timedelta(minutes=2)
    if end.hour == 0 and end.minute < 2:  # keep the window inside one day
        end += timedelta(minutes=3)
    start = end - timedelta(minutes=2)
    rules = _quiet_rules(tmp_path, start, end)
    routes = Path(rules[0]) / "routes.yaml"
    routes.write_text(routes.read_text().replace(
        "  routes:\n", "  routes:\n"
        "    - matchers: ['alertname=\"DiskWillFill\"']\n"
        "      audiences: [sleepers]\n", 1))
    tocsin = tocsin_factory(smtp_port=smtp_server.port, rules=rules).start(
        fake_now=end - timedelta(seconds=45))
    now = tocsin.now()
    body = {"version": "4", "status": "firing", "receiver": "t", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "groupKey": "{}", "alerts": [{
                "status": "firing", "labels": {"alertname": "DiskWillFill",
                                               "severity": "warning"},
                "annotations": {}, "startsAt": now.isoformat(), "endsAt":
                "0001-01-01T00:00:00Z", "generatorURL": ""}]}
    assert tocsin.post_webhook(body)[0] == 200
    wait_until(lambda: [d for d in tocsin.deliveries(status="pending")],
               what="a held delivery", timeout_s=20)
    [held] = tocsin.deliveries(status="pending")
    assert _parse(held["next_attempt_at"]) == end  # held until the window ends
    assert tocsin.now() < end and smtp_server.received == []
    tocsin.kill()
    restarted = tocsin_factory(smtp_port=smtp_server.port, rules=rules,
                               workdir=tmp_path).start(fake_now=end - timedelta(seconds=5))
    [mail] = smtp_server.handler.wait_for(1, timeout_s=60)
    assert restarted.now() >= end  # the shifted clock Tocsin runs on
    assert mail.rcpt_tos == ["sleeper@example.com"]
    [sent] = wait_until(lambda: restarted.deliveries(status="sent"), what="marked sent")
    assert sent["id"] == held["id"] and _parse(sent["sent_at"]) >= end
    wait_quiescent(restarted)
    assert len(smtp_server.received) == 1
