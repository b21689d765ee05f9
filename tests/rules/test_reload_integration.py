"""A running Tocsin picks up edited rule files (watcher and SIGHUP) and keeps them on errors."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.services.http import request, wait_until
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = pytest.mark.integration

AUDIENCES = """\
audiences:
  first: {contacts: [{id: first, name: First, email: first@example.com}]}
  second: {contacts: [{id: second, name: Second, email: second@example.com}]}
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ severity }}"}
"""


def _write_rules(folder: Path, audience: str) -> None:
    path = folder / "rules.yaml"
    path.write_text(AUDIENCES + textwrap.dedent(f"""\
        route:
          audiences: [{audience}]
          template: t
          channels: {{default: [email]}}
          group_by: [alertname]
          group_wait: 0s
          group_interval: 1s
        """), encoding="utf-8")
    st = path.stat()  # a distinct modification time even on coarse-grained file systems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _alert(name: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    alert = {"status": "firing", "labels": {"alertname": name}, "annotations": {},
             "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
             "fingerprint": "0"}
    return {"receiver": "tocsin", "status": "firing", "alerts": [alert],
            "groupLabels": {}, "commonLabels": {"alertname": name}, "commonAnnotations": {},
            "externalURL": "http://am.example", "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}"}}', "truncatedAlerts": 0}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def _send_and_receive(tocsin: TocsinProcess, smtp: SmtpServer, name: str) -> list[str]:
    """Post one alert; return the recipients of the email about it."""
    status, body = tocsin.post_webhook(_alert(name))
    assert status == 200, body

    def arrived() -> list[str] | None:
        for mail in smtp.received:
            if mail.subject == name:
                return mail.rcpt_tos
        return None

    return wait_until(arrived, timeout_s=30, what=f"the email about {name}")


def _start(tmp_path: Path, smtp: SmtpServer, poll_interval_s: float) -> TocsinProcess:
    rules = tmp_path / "rules"
    rules.mkdir()
    _write_rules(rules, "first")
    return TocsinProcess(tmp_path, smtp_port=smtp.port, rules=[str(rules)],
                         extra={"rules_poll_interval_s": poll_interval_s}).start()


def test_file_edit_reroutes_the_next_alert_and_bad_edit_keeps_rules(
        tmp_path: Path, smtp: SmtpServer) -> None:
    """Edit on disk → next alert goes to the new audience; an invalid edit changes nothing."""
    tocsin = _start(tmp_path, smtp, 0.2)
    try:
        assert _send_and_receive(tocsin, smtp, "Before") == ["first@example.com"]
        first_reload = tocsin.metric("tocsin_rules_last_reload_timestamp_seconds")

        _write_rules(tmp_path / "rules", "second")
        wait_until(lambda: (tocsin.metric("tocsin_rules_last_reload_timestamp_seconds") or 0)
                   > (first_reload or 0), timeout_s=30, what="the rules reloaded")
        assert _send_and_receive(tocsin, smtp, "After") == ["second@example.com"]

        _write_rules(tmp_path / "rules", "nobody")
        wait_until(lambda: tocsin.metric("tocsin_rules_reload_success") == 0, timeout_s=30,
                   what="the invalid rules rejected")
        assert "rules.yaml:9:15: error: unknown audience 'nobody'" in tocsin.log()
        assert _send_and_receive(tocsin, smtp, "StillSecond") == ["second@example.com"]
    finally:
        assert tocsin.terminate() == 0


def test_sighup_reloads(tmp_path: Path, smtp: SmtpServer) -> None:
    """With file watching off, SIGHUP reloads the rules of the running process."""
    tocsin = _start(tmp_path, smtp, 0)
    try:
        _write_rules(tmp_path / "rules", "second")
        assert _send_and_receive(tocsin, smtp, "NotYet") == ["first@example.com"]
        before = tocsin.metric("tocsin_rules_last_reload_timestamp_seconds") or 0
        os.kill(tocsin.pid, signal.SIGHUP)
        wait_until(lambda: (tocsin.metric("tocsin_rules_last_reload_timestamp_seconds") or 0)
                   > before, timeout_s=30, what="the rules reloaded on SIGHUP")
        assert _send_and_receive(tocsin, smtp, "Now") == ["second@example.com"]
    finally:
        assert tocsin.terminate() == 0


ROUTED = """\
route:
  name: default
  audiences: [first]
  template: t
  channels: {default: [email]}
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
  routes:
"""
BILLING = """\
    - name: billing
      matchers: ['service="billing"']
      audiences: [second]
"""
INSERTED = """\
    - name: payments
      matchers: ['team="payments"']
"""


def _billing(status: str, starts_at: str) -> dict[str, Any]:
    """One billing alert, firing or resolved, as Alertmanager re-sends it."""
    alert = {"status": status, "labels": {"alertname": "BillingDown", "service": "billing"},
             "annotations": {}, "startsAt": starts_at,
             "endsAt": starts_at if status == "resolved" else "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": "0"}
    return {"receiver": "tocsin", "status": status, "alerts": [alert], "groupLabels": {},
            "commonLabels": alert["labels"], "commonAnnotations": {},
            "externalURL": "http://am.example", "version": "4",
            "groupKey": '{}:{alertname="BillingDown"}', "truncatedAlerts": 0}


def test_route_inserted_above_and_reloaded_keeps_the_open_incident(
        tmp_path: Path, smtp: SmtpServer) -> None:
    """Page once; insert a route above billing, POST /-/reload; the re-sent alert joins the
    same incident (no second notice) and the incident still resolves with its notice.

    Reproducer: the group key hashed the route position, so the re-send opened a second
    incident and paged again, and the first never resolved.
    """
    folder = tmp_path / "rules"
    folder.mkdir()
    rules = folder / "rules.yaml"
    rules.write_text(AUDIENCES + ROUTED + BILLING, encoding="utf-8")
    tocsin = TocsinProcess(tmp_path, smtp_port=smtp.port, rules=[str(folder)],
                           extra={"rules_poll_interval_s": 0}).start()
    try:
        started = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        status, body = tocsin.post_webhook(_billing("firing", started))
        assert status == 200, body
        wait_until(lambda: [m for m in smtp.received if m.subject == "BillingDown"],
                   timeout_s=30, what="the first notice")

        rules.write_text(AUDIENCES + ROUTED + INSERTED + BILLING, encoding="utf-8")
        status, body = request("POST", f"{tocsin.url}/-/reload")
        assert status == 200, body
        status, body = tocsin.post_webhook(_billing("firing", started))
        assert status == 200, body

        def incident_events() -> list[dict[str, Any]] | None:
            code, items = request("GET", f"{tocsin.url}/api/v1/incidents")
            assert code == 200, items
            assert len(items) == 1, items  # no second incident
            code, detail = request("GET", f"{tocsin.url}/api/v1/incidents/{items[0]['id']}")
            assert code == 200, detail
            events: list[dict[str, Any]] = detail["timeline"]
            return events if any(e["event"] == "duplicate" for e in events) else None

        wait_until(incident_events, timeout_s=30, what="the re-send joined the incident")

        status, body = tocsin.post_webhook(_billing("resolved", started))
        assert status == 200, body
        wait_until(lambda: len(smtp.received) >= 2, timeout_s=30, what="the resolved notice")
        phases = sorted(d["phase"] for d in tocsin.deliveries())
        assert phases == ["firing", "resolved"]
        assert [m.rcpt_tos for m in smtp.received] == [["second@example.com"]] * 2
        code, items = request("GET", f"{tocsin.url}/api/v1/incidents")
        assert code == 200, items
        assert [(i["state"], i["route_id"]) for i in items] == [("resolved", "billing")]
    finally:
        assert tocsin.terminate() == 0
