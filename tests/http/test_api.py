"""History API, probes, metrics and JSON errors of the HTTP app (real SQLite store)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from router.http.state import INSTANCE
from router.instances import compare
from router.models import NewDelivery, Receipt, RenderedMessage
from router.store.base import InstanceInfo
from tests.store.factories import make_record

from .conftest import state_of, store_of

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def _delivery(key: str, recipient: str) -> NewDelivery:
    return NewDelivery(
        idempotency_key=key,
        incident_key='{}:{alertname="HostDown"}',
        fingerprint="7f7737c93e27e4d4",
        route_id="root/1",
        phase="firing",
        channel="email",
        recipient=recipient,
        contact_id="ops",
        audience="ops",
        severity="critical",
        locale="fr",
        message=RenderedMessage(subject="Panne", text="Le nœud est tombé"),
    )


async def _three_deliveries(client: TestClient[Any, Any]) -> None:
    """One sent, one failed, one pending (in that insertion order)."""
    store = store_of(client)
    inserted = await store.commit_plan(
        [],
        [_delivery("k1", "alice.martin@example.com"), _delivery("k2", "bob@example.org"),
         _delivery("k3", "+33612345678")],
        now=NOW,
        deadline_s=3600,
    )
    assert inserted == 3
    claimed = await store.claim_due(NOW, limit=2, lease_s=60)
    by_key = {d.idempotency_key: d.id for d in claimed}
    await store.mark_sent(by_key["k1"], NOW, Receipt(provider_id="<m1@x>"))
    await store.mark_failed(by_key["k2"], NOW, "550 5.1.1 <bob@example.org>: no such user")


async def test_deliveries_lists_history_with_masked_recipients(
    client: TestClient[Any, Any],
) -> None:
    """The history shows every documented field, newest first, recipients masked."""
    await _three_deliveries(client)
    response = await client.get("/api/v1/deliveries")
    assert response.status == 200
    rows = await response.json()
    assert [r["recipient"] for r in rows] == ["+336******78", "b***@e***.org", "a***@e***.com"]
    assert set(rows[0]) == {
        "id", "incident_key", "fingerprint", "route_id", "phase", "channel", "recipient",
        "audience", "severity", "status", "attempts", "created_at", "updated_at", "sent_at",
        "next_attempt_at", "last_error", "dead_letter", "dead_letter_reason", "segments",
        "fallback_of",
    }
    sent = rows[2]
    assert sent["status"] == "sent"
    assert sent["attempts"] == 1
    assert sent["sent_at"].startswith("2026-11-29T06:00:00")
    assert sent["incident_key"] == '{}:{alertname="HostDown"}'
    failed = rows[1]
    assert failed["last_error"] == "550 5.1.1 <b***@e***.org>: no such user"
    assert "alice" not in str(rows) and "bob@" not in str(rows) and "12345" not in str(rows)


@pytest.mark.parametrize(("status", "count"), [("pending", 1), ("sent", 1), ("failed", 1)])
async def test_deliveries_filter_by_status(
    client: TestClient[Any, Any], status: str, count: int
) -> None:
    """?status= keeps only rows in that status."""
    await _three_deliveries(client)
    rows = await (await client.get(f"/api/v1/deliveries?status={status}")).json()
    assert len(rows) == count
    assert {r["status"] for r in rows} == {status}


async def test_deliveries_filter_by_incident_and_phase(client: TestClient[Any, Any]) -> None:
    """?incident= and ?phase= keep the rows of one incident, of one phase."""
    await _three_deliveries(client)
    other = replace(_delivery("k4", "carol@example.com"), incident_key="inc-2",
                    phase="reminder")
    assert await store_of(client).commit_plan([], [other], now=NOW, deadline_s=60) == 1
    rows = await (await client.get("/api/v1/deliveries?incident=inc-2")).json()
    assert [(r["incident_key"], r["phase"]) for r in rows] == [("inc-2", "reminder")]
    rows = await (await client.get("/api/v1/deliveries?phase=firing")).json()
    assert len(rows) == 3
    rows = await (await client.get("/api/v1/deliveries?phase=reminder&incident=inc-1")).json()
    assert rows == []


async def test_deliveries_limit_and_offset(client: TestClient[Any, Any]) -> None:
    """limit and offset page through the history, newest first."""
    await _three_deliveries(client)
    first = await (await client.get("/api/v1/deliveries?limit=2")).json()
    rest = await (await client.get("/api/v1/deliveries?limit=2&offset=2")).json()
    assert len(first) == 2 and len(rest) == 1
    assert [r["id"] for r in first + rest] == sorted((r["id"] for r in first + rest),
                                                     reverse=True)


@pytest.mark.parametrize(
    ("query", "location", "words"),
    [
        ("status=done", "query.status",
         "must be one of pending, sent, failed, cancelled, got 'done'"),
        ("phase=paged", "query.phase", "must be one of firing, update, follow_up"),
        ("limit=1001", "query.limit", "must be an integer from 1 to 1000, got 1001"),
        ("limit=0", "query.limit", "must be an integer from 1 to 1000, got 0"),
        ("limit=ten", "query.limit", "got 'ten'"),
        ("offset=-1", "query.offset", "must be an integer from 0"),
    ],
)
async def test_deliveries_bad_query_is_400(
    client: TestClient[Any, Any], query: str, location: str, words: str
) -> None:
    """Invalid filters are a 400 naming the parameter, never a 500."""
    response = await client.get(f"/api/v1/deliveries?{query}")
    assert response.status == 400
    answer = await response.json()
    assert answer["status"] == "error"
    assert answer["location"] == location
    assert words in answer["error"]


async def test_healthz(client: TestClient[Any, Any]) -> None:
    """/healthz answers 200 while the process runs."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_ready_then_draining(client: TestClient[Any, Any]) -> None:
    """/readyz is 200 when store and rules are fine, 503 with the reason once draining."""
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["status"] == "ready" and "reasons" not in body
    assert body["instance"]["store"] == "sqlite"
    state_of(client).draining = True
    draining = await client.get("/readyz")
    assert draining.status == 503
    body = await draining.json()
    assert (body["status"], body["reasons"]) == (
        "not ready", ["draining: the service is shutting down"])


async def test_readyz_stays_ready_while_items_are_set_aside(
        client: TestClient[Any, Any]) -> None:
    """A decision, not a reproducer (docs/operations.md, TocsinPipelineItemFailing): a
    dead-lettered intake row does not take the instance out of its load balancer."""
    store = store_of(client)
    ids = await store.append_intake([make_record()])
    await store.dead_letter_intake([(ids[0], "ZeroDivisionError: boom")], now=NOW)
    dead = await client.get("/api/v1/intake?status=dead")
    assert [row["id"] for row in await dead.json()] == ids
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def test_readyz_names_a_rule_set_mismatch_without_failing(
        client: TestClient[Any, Any]) -> None:
    """Another instance running another rule set is a /readyz detail, still 200."""
    status = client.app[INSTANCE]
    me = status.identity.instance_id
    seen = [InstanceInfo(me, "1", "aaaa", NOW, NOW),
            InstanceInfo("tocsin-b", "1", "bbbb", NOW, NOW)]
    status.agreement = compare(me, "aaaa", seen)
    response = await client.get("/readyz")
    assert response.status == 200
    detail = (await response.json())["instance"]
    assert detail["rules_hash"] == "aaaa"
    assert detail["instances"] == [me, "tocsin-b"]
    assert "tocsin-b (bbbb)" in detail["rules_mismatch"]


async def test_readyz_store_down(client: TestClient[Any, Any]) -> None:
    """A store that no longer answers makes /readyz 503 (not a 500)."""
    await store_of(client).close()
    response = await client.get("/readyz")
    assert response.status == 503
    assert "state store not answering" in (await response.json())["reasons"]


async def test_metrics_expose_tocsin_metrics_and_refresh_gauges(
    client: TestClient[Any, Any],
) -> None:
    """/metrics is Prometheus text; outbox and intake gauges come from the store."""
    await _three_deliveries(client)
    fixture = b'{"alerts": [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]}'
    posted = await client.post("/webhook/alertmanager", data=fixture,
                               headers={"Content-Type": "application/json"})
    assert posted.status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert 'tocsin_outbox_depth{status="pending"} 1.0' in text
    assert 'tocsin_outbox_depth{status="failed"} 1.0' in text
    assert "tocsin_intake_pending 2.0" in text
    assert "tocsin_alerts_received_total" in text
    assert "tocsin_webhook_rejected_requests_total" in text


async def test_unknown_path_is_json_404(client: TestClient[Any, Any]) -> None:
    """404s are JSON too."""
    response = await client.get("/nope")
    assert response.status == 404
    assert await response.json() == {"status": "error", "error": "not found: GET /nope"}


async def test_wrong_method_is_json_405_with_allow(client: TestClient[Any, Any]) -> None:
    """405s are JSON and keep the Allow header."""
    response = await client.get("/webhook/alertmanager")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    answer = await response.json()
    assert answer["error"] == "method GET not allowed on /webhook/alertmanager (allowed: POST)"


async def test_intake_lists_dead_lettered_rows_masked(client: TestClient[Any, Any]) -> None:
    """GET /api/v1/intake?status=dead lists rows whose routing raised, with the reason,
    addresses in values masked; other statuses are a 400."""
    from router.fingerprint import fingerprint
    from router.models import Alert, IntakeRecord
    from router.store import SqliteStore

    store = store_of(client)
    assert isinstance(store, SqliteStore)
    labels = {"alertname": "Boom", "owner": "alice.martin@example.com"}
    alert = Alert(labels=labels, annotations={"eta": "999999999d"}, status="firing",
                  starts_at=NOW, ends_at=None, generator_url="",
                  fingerprint=fingerprint(labels))
    (row_id,) = await store.append_intake([
        IntakeRecord(source="alertmanager", received_at=NOW, alert=alert, meta={})])
    assert (await client.get("/api/v1/intake")).status == 200
    assert await (await client.get("/api/v1/intake")).json() == []
    await store.dead_letter_intake([(row_id, "ZeroDivisionError: bug")], now=NOW)
    resp = await client.get("/api/v1/intake?status=dead")
    assert resp.status == 200
    (row,) = await resp.json()
    assert row["id"] == row_id and row["dead_letter_reason"] == "ZeroDivisionError: bug"
    assert row["labels"]["owner"] != "alice.martin@example.com"
    assert "alice.martin" not in str(row)
    assert row["annotations"] == {"eta": "999999999d"}
    assert (await client.get("/api/v1/intake?status=pending")).status == 400
