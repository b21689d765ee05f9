"""Real Tocsin processes consuming from a real tansu broker, emails to a real aiosmtpd."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kafka.broker import FAST_GROUP, Tansu
from tests.kafka.kafkahelp import produce, webhook_body
from tests.services.http import request, wait_until
from tests.services.ports import free_port
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_TIMEOUT_S = 60.0


def _kafka(tansu: Tansu, **changes: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "bootstrap_servers": [tansu.bootstrap], "group_id": "tocsin", "topics": ["alerts"],
        "commit_interval_s": 0.5, "health_interval_s": 0.5, **FAST_GROUP,
    }
    section.update(changes)
    return {"kafka": section}


def _subjects(smtp: SmtpServer) -> list[str]:
    return [mail.subject for mail in smtp.received]


def _intake_rows(workdir: Path) -> Counter[str]:
    with sqlite3.connect(workdir / "tocsin.db") as conn:
        rows = conn.execute("SELECT alert FROM intake WHERE source = 'kafka'").fetchall()
    return Counter(json.loads(row[0])["labels"]["alertname"] for row in rows)


def test_each_message_format_is_routed_to_an_email(
    tansu: Tansu, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Webhook body, single alert object and generic event topics each yield an email."""
    for topic in ("am-webhooks", "am-alerts", "events"):
        tansu.create_topic(topic, partitions=1)
    extra = _kafka(tansu, topics=["am-webhooks", "am-alerts", "events"],
                   formats={"am-alerts": "alertmanager_alert", "events": "event"})
    tocsin_factory(smtp_port=smtp_server.port, extra=extra).start(timeout_s=START_TIMEOUT_S)
    single = {"labels": {"alertname": "FromAlertObject", "instance": "db-1"},
              "annotations": {"summary": "single"}, "startsAt": "2024-05-01T10:00:00Z"}
    event = {"source": "billing", "name": "FromGenericEvent", "severity": "critical",
             "annotations": {"summary": "event"}, "starts_at": "2024-05-01T10:00:00Z"}
    asyncio.run(produce(tansu.bootstrap, "am-webhooks", [webhook_body("FromWebhookBody")]))
    asyncio.run(produce(tansu.bootstrap, "am-alerts", [json.dumps(single).encode()]))
    asyncio.run(produce(tansu.bootstrap, "events", [json.dumps(event).encode()]))
    mails = smtp_server.handler.wait_for(3, timeout_s=60)
    subjects = " | ".join(mail.subject for mail in mails)
    for name in ("FromWebhookBody", "FromAlertObject", "FromGenericEvent"):
        assert name in subjects
    assert "[FIRING:critical] FromGenericEvent" in subjects
    assert all(mail.rcpt_tos == ["ops@example.com"] for mail in mails)


def test_sigkill_mid_stream_hands_every_alert_off_once(
    tmp_path: Path, tansu: Tansu, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Killed with handed-off but uncommitted offsets, restarted: each alert once, one email."""
    tansu.create_topic("alerts", partitions=2)
    # Offsets are committed only at shutdown or revocation: the SIGKILL leaves them all
    # uncommitted, so the restarted consumer is redelivered everything already handed off.
    extra = _kafka(tansu, commit_interval_s=3600, max_records=3)
    names = [f"Crash{i:02d}" for i in range(40)]
    smtp_port = free_port()  # no SMTP yet: nothing is sent before the kill (no send to lose)
    first = tocsin_factory(smtp_port=smtp_port, extra=extra).start(timeout_s=START_TIMEOUT_S)
    asyncio.run(produce(tansu.bootstrap, "alerts", [webhook_body(n) for n in names[:20]],
                        keys=[n.encode() for n in names[:20]]))
    wait_until(lambda: len(first.deliveries(status="pending")) >= 20, timeout_s=60,
               what="the first 20 alerts in the outbox")
    first.kill()
    # the stream goes on while Tocsin is down
    asyncio.run(produce(tansu.bootstrap, "alerts", [webhook_body(n) for n in names[20:]],
                        keys=[n.encode() for n in names[20:]]))

    smtp = SmtpServer(port=smtp_port).start()
    try:
        second = tocsin_factory(smtp_port=smtp_port, extra=extra, workdir=tmp_path).start(
            timeout_s=START_TIMEOUT_S)
        smtp.handler.wait_for(40, timeout_s=90)
        wait_until(lambda: len(second.deliveries(status="sent")) >= 40, timeout_s=30,
                   what="40 deliveries marked sent")
        redelivered = second.metric("tocsin_kafka_messages_redelivered_total", 'topic="alerts"')
        assert second.terminate() == 0
        subjects = Counter(_subjects(smtp))
    finally:
        smtp.stop()
    assert _intake_rows(tmp_path) == Counter(names)  # handed off exactly once each
    assert len(subjects) == 40 and set(subjects.values()) == {1}, subjects
    assert redelivered is not None and redelivered >= 20  # redelivered, recognised, skipped


def test_the_same_alert_published_twice_sends_one_email(
    tansu: Tansu, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """A duplicate message (a producer retry) is a duplicate alert: no second notification."""
    tansu.create_topic("alerts", partitions=1)
    tocsin = tocsin_factory(smtp_port=smtp_server.port, extra=_kafka(tansu)).start(
        timeout_s=START_TIMEOUT_S)
    body = webhook_body("Duplicated")
    asyncio.run(produce(tansu.bootstrap, "alerts", [body, body, webhook_body("Marker")]))
    smtp_server.handler.wait_for(2, timeout_s=60)
    wait_until(lambda: len(tocsin.deliveries(status="sent")) >= 2, what="both sent")
    assert sorted("Duplicated" in s for s in _subjects(smtp_server)) == [False, True]


def test_poison_message_goes_to_the_dead_letter_topic_and_the_next_one_is_emailed(
    tansu: Tansu, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """The service dead-letters an invalid message and goes on; the metric counts it."""
    from tests.kafka.kafkahelp import read_topic

    tansu.create_topic("alerts", partitions=1)
    tocsin = tocsin_factory(smtp_port=smtp_server.port,
                            extra=_kafka(tansu, dead_letter_topic="alerts.dlq")).start(
        timeout_s=START_TIMEOUT_S)
    asyncio.run(produce(tansu.bootstrap, "alerts",
                        [b'{"alerts": "nope"}', webhook_body("AfterPoison")]))
    [mail] = smtp_server.handler.wait_for(1, timeout_s=60)
    assert "AfterPoison" in mail.subject
    [letter] = asyncio.run(read_topic(tansu.bootstrap, "alerts.dlq", 1))
    assert letter.value == b'{"alerts": "nope"}'
    assert dict(letter.headers)["tocsin-dlq-offset"] == b"0"
    assert tocsin.metric("tocsin_kafka_messages_dead_lettered_total",
                         'reason="invalid_payload",topic="alerts"') == 1


def test_two_consumers_split_the_partitions_and_process_everything_once(
    tmp_path: Path, tansu: Tansu, smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """Two group members each own some partitions; together: every alert, one email each."""
    tansu.create_topic("alerts", partitions=4)
    extra = _kafka(tansu)
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    a = tocsin_factory(smtp_port=smtp_server.port, extra=extra, workdir=dirs[0]).start(
        timeout_s=START_TIMEOUT_S)
    b = tocsin_factory(smtp_port=smtp_server.port, extra=extra, workdir=dirs[1]).start(
        timeout_s=START_TIMEOUT_S)
    wait_until(lambda: _ready(a) and _ready(b), timeout_s=START_TIMEOUT_S,
               what="both members assigned")
    names = [f"Split{i:02d}" for i in range(40)]
    asyncio.run(produce(tansu.bootstrap, "alerts", [webhook_body(n) for n in names],
                        keys=[n.encode() for n in names]))
    smtp_server.handler.wait_for(40, timeout_s=90)
    assert a.terminate() == 0 and b.terminate() == 0
    subjects = Counter(_subjects(smtp_server))
    assert len(subjects) == 40 and set(subjects.values()) == {1}, subjects
    rows_a, rows_b = _intake_rows(dirs[0]), _intake_rows(dirs[1])
    assert rows_a and rows_b  # both members did part of the work
    assert rows_a + rows_b == Counter(names)


def test_cluster_ingest_webhook_to_topic_to_consumer_to_email(
    tmp_path: Path, tansu: Tansu, smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """An ingest instance answers 200 once Kafka acked; a consumer instance sends the email."""
    tansu.create_topic("ingest", partitions=2)
    ingest_dir, worker_dir = tmp_path / "ingest", tmp_path / "worker"
    ingest_dir.mkdir()
    worker_dir.mkdir()
    ingest = tocsin_factory(
        smtp_port=smtp_server.port, workdir=ingest_dir,
        extra={"kafka": {"bootstrap_servers": [tansu.bootstrap],
                         "publish": {"topic": "ingest", "key": "fingerprint"}}},
    ).start(timeout_s=START_TIMEOUT_S)
    tocsin_factory(smtp_port=smtp_server.port, workdir=worker_dir,
                   extra=_kafka(tansu, topics=["ingest"])).start(timeout_s=START_TIMEOUT_S)
    body = json.loads(webhook_body("ViaClusterIngest", instance="web-1"))
    status, answer = ingest.post_webhook(body)
    assert status == 200, answer
    assert answer["published"] == 1
    [mail] = smtp_server.handler.wait_for(1, timeout_s=60)
    assert "ViaClusterIngest on web-1" in mail.subject
    assert _intake_rows(ingest_dir) == Counter()  # the ingest instance keeps no intake


def test_readyz_turns_false_when_the_broker_is_gone(
    tansu: Tansu, smtp_server: SmtpServer, tocsin_factory: Callable[..., TocsinProcess]
) -> None:
    """Ready with an assignment; 503 naming Kafka once the broker is unreachable past grace."""
    tansu.create_topic("alerts", partitions=1)
    tocsin = tocsin_factory(smtp_port=smtp_server.port,
                            extra=_kafka(tansu, unreachable_grace_s=2)).start(
        timeout_s=START_TIMEOUT_S)
    assert _ready(tocsin)
    tansu.stop()
    reasons = wait_until(lambda: _not_ready_reasons(tocsin), timeout_s=60, what="503")
    assert any("kafka" in reason for reason in reasons), reasons


def _ready(tocsin: TocsinProcess) -> bool:
    return request("GET", f"{tocsin.url}/readyz", timeout_s=2)[0] == 200


def _not_ready_reasons(tocsin: TocsinProcess) -> list[str] | None:
    status, body = request("GET", f"{tocsin.url}/readyz", timeout_s=2)
    return body["reasons"] if status == 503 else None
