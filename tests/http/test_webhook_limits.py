"""POST /webhook/alertmanager: payload limits, the default size, and 4xx (not 5xx) for
client mistakes. Real HTTP (aiohttp test server on 127.0.0.1) and a real SQLite store.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from router.config import WebhookConfig

from .conftest import ClientFactory, metric, store_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
SINGLE = (FIXTURES / "01-firing-single.json").read_bytes()
URL = "/webhook/alertmanager"
JSON = {"Content-Type": "application/json"}


def _rejected(status: int, reason: str) -> float:
    return metric("tocsin_webhook_rejected_requests_total", status=str(status), reason=reason)


async def _nothing_persisted(client: TestClient[Any, Any]) -> None:
    assert (await store_of(client).counts())["intake_pending"] == 0
    assert await store_of(client).fetch_intake(10) == []


def _compact(body: dict[str, Any]) -> bytes:
    """JSON as Alertmanager writes it (Go's encoding/json: no spaces)."""
    return json.dumps(body, separators=(",", ":")).encode()


def _fixture_alerts() -> list[dict[str, Any]]:
    """Every alert of the captured Alertmanager payloads in tests/fixtures/alertmanager."""
    alerts: list[dict[str, Any]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and isinstance(data.get("alerts"), list):
            alerts.extend(data["alerts"])
    return alerts


def _group(count: int) -> bytes:
    """A group of ``count`` alerts shaped like the largest real captured alert."""
    largest = max(_fixture_alerts(), key=lambda a: len(_compact(a)))
    envelope = json.loads(SINGLE)
    alerts = []
    for index in range(count):
        alert = json.loads(json.dumps(largest))
        alert["labels"]["instance"] = f"host-{index:05d}.example.internal:9100"
        alerts.append(alert)
    envelope["alerts"] = alerts
    return _compact(envelope)


def test_default_body_limit_fits_10000_alerts_of_four_times_the_largest_real_one() -> None:
    """Reproducer 7: the default max_body_bytes holds 10,000 alerts with 4x headroom."""
    sizes = [len(_compact(alert)) for alert in _fixture_alerts()]
    assert len(sizes) >= 10
    assert max(sizes) < 500  # measured on Alertmanager 0.25 payloads: 198-390 bytes
    defaults = WebhookConfig()
    assert defaults.max_body_bytes >= 10_000 * 4 * max(sizes)
    assert defaults.max_alerts >= 10_000


async def test_group_of_10000_alerts_is_accepted_by_default(client: TestClient[Any, Any]) -> None:
    """Reproducer 7: a 10,000-alert group (~4 MB, was 413 over 1 MiB) answers 200."""
    body = _group(10_000)
    assert len(body) > 2 * 1_048_576
    response = await client.post(URL, data=body, headers=JSON)
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "success", "accepted": 10_000}
    assert (await store_of(client).counts())["intake_pending"] == 10_000


LIMIT_CASES: list[tuple[str, dict[str, int], dict[str, Any], str, str, str]] = [
    ("alerts", {"max_alerts": 2},
     {"alerts": [{"labels": {"a": str(i)}} for i in range(3)]},
     "too_many_alerts", "alerts", "3 exceeds the limit of 2 per request (webhook.max_alerts)"),
    ("labels", {"max_labels": 3},
     {"alerts": [{"labels": {"a": "1"}}, {"labels": {f"l{i}": "v" for i in range(4)}}]},
     "too_many_labels", "alerts.1.labels", "has 4 labels: the limit is 3 (webhook.max_labels)"),
    ("label bytes", {"max_label_bytes": 100},
     {"alerts": [{"labels": {"alertname": "é" * 60}}]},  # 60 characters, 129 bytes
     "labels_too_large", "alerts.0.labels",
     "are 129 bytes: the limit is 100 (webhook.max_label_bytes)"),
    ("annotation bytes", {"max_annotation_bytes": 1000},
     {"alerts": [{"labels": {"a": "b"}, "annotations": {"description": "x" * 1001}}]},
     "annotations_too_large", "alerts.0.annotations",
     "are 1012 bytes: the limit is 1000 (webhook.max_annotation_bytes)"),
]


@pytest.mark.parametrize(("name", "limits", "payload", "reason", "location", "words"),
                         LIMIT_CASES, ids=[case[0] for case in LIMIT_CASES])
async def test_payload_over_a_limit_is_413_naming_the_limit(
    make_client: ClientFactory, name: str, limits: dict[str, int], payload: dict[str, Any],
    reason: str, location: str, words: str,
) -> None:
    """Reproducer 4: over a webhook.max_* limit: 413, the key and the alert named, nothing kept."""
    client = await make_client(webhook=limits)
    before = _rejected(413, reason)
    response = await client.post(URL, data=_compact(payload), headers=JSON)
    assert response.status == 413
    answer = await response.json()
    assert words in answer["error"]
    assert answer["location"] == location
    assert _rejected(413, reason) - before == 1
    await _nothing_persisted(client)


async def test_payload_at_the_limits_is_accepted(make_client: ClientFactory) -> None:
    """Exactly at every limit is still accepted (the limits are inclusive)."""
    client = await make_client(webhook={"max_alerts": 2, "max_labels": 2,
                                        "max_label_bytes": 100, "max_annotation_bytes": 100})
    alert = {"labels": {"alertname": "x" * 45, "b": "y" * 45},  # 9 + 45 + 1 + 45 = 100
             "annotations": {"summary": "s" * 93}}  # 7 + 93 = 100
    response = await client.post(URL, data=_compact({"alerts": [alert, alert]}), headers=JSON)
    assert response.status == 200, await response.text()


async def test_deeply_nested_body_is_400(client: TestClient[Any, Any]) -> None:
    """Reproducer 10: ``[`` x 50,000 answers a JSON 400 (was 500: RecursionError)."""
    before = _rejected(400, "malformed_json")
    response = await client.post(URL, data=b"[" * 50_000, headers=JSON)
    assert response.status == 400
    assert "malformed JSON: recursion limit exceeded" in (await response.json())["error"]
    assert _rejected(400, "malformed_json") - before == 1
    await _nothing_persisted(client)


@pytest.mark.parametrize(("field", "value"), [
    ("startsAt", "9999-12-31T23:00:00-01:00"),
    ("startsAt", "0001-01-01T00:00:00+01:00"),
    ("endsAt", "9999-12-31T23:30:00-00:45"),
])
async def test_time_out_of_range_in_utc_is_400(
    client: TestClient[Any, Any], field: str, value: str,
) -> None:
    """Reproducer 10: a time past year 9999 (or before 1) in UTC is a 400 (was 500)."""
    body = _compact({"alerts": [{"labels": {"a": "b"}, field: value}]})
    response = await client.post(URL, data=body, headers=JSON)
    assert response.status == 400
    answer = await response.json()
    assert answer["location"] == f"alerts.0.{field}"
    assert "out of range" in answer["error"]
    await _nothing_persisted(client)


async def test_gzip_encoding_on_a_plain_body_is_400(client: TestClient[Any, Any]) -> None:
    """Reproducer 10: ``Content-Encoding: gzip`` on a body that is not gzip is 400 (was 500)."""
    before = _rejected(400, "bad_encoding")
    response = await client.post(URL, data=SINGLE,
                                 headers={**JSON, "Content-Encoding": "gzip"})
    assert response.status == 400
    assert (await response.json())["error"] == (
        "the body cannot be decoded as Content-Encoding 'gzip'")
    assert _rejected(400, "bad_encoding") - before == 1
    await _nothing_persisted(client)


async def test_real_gzip_body_is_accepted(client: TestClient[Any, Any]) -> None:
    """A body that is gzip, declared so, is decoded and accepted."""
    response = await client.post(URL, data=gzip.compress(SINGLE),
                                 headers={**JSON, "Content-Encoding": "gzip"})
    assert response.status == 200


async def test_gzip_bomb_is_413_not_memory(make_client: ClientFactory) -> None:
    """A small gzip body that inflates past max_body_bytes is refused 413."""
    client = await make_client(webhook={"max_body_bytes": 65_536})
    bomb = gzip.compress(b" " * 10_000_000)
    assert len(bomb) < 65_536
    response = await client.post(URL, data=bomb, headers={**JSON, "Content-Encoding": "gzip"})
    assert response.status == 413
    await _nothing_persisted(client)
