"""The Alertmanager webhook adapter: lenient on what senders vary, strict on what routes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.alertmanager import WebhookPayloadError, count_alerts, parse_webhook
from router.fingerprint import fingerprint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
CORPUS = Path(__file__).resolve().parent / "webhook_payloads"  # copied, see its README
NOW = datetime(2030, 1, 1, tzinfo=UTC)

REAL = sorted(p for p in FIXTURES.glob("*.json") if not p.name.endswith(".headers.json"))
# Bodies that are not acceptable webhook notifications, and why (decided on purpose):
# the heartbeat has an empty alert list; the two "prometheus" files are the list of alerts
# Prometheus POSTs to Alertmanager's API, not a webhook body.
CORPUS_REJECTED = {
    "promgen__tests-examples-heartbeat.json": ("empty_alerts", "at least one alert"),
    "promgen__tests-examples-prometheus.alert.json": ("not_an_object", "must be a JSON object"),
    "promgen__tests-notification-alertmanager.json": ("not_an_object", "must be a JSON object"),
}
CORPUS_FILES = sorted(p for p in CORPUS.glob("*.json") if p.name != "SOURCES.json")


def _body(**overrides: Any) -> bytes:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {"alertname": "DiskFull", "instance": "db-1", "severity": "warning"},
        "annotations": {"summary": "disk 95% full"},
        "startsAt": "2026-11-29T05:29:56.374909774Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "0000000000000000",
    }
    alert.update(overrides.pop("alert", {}))
    body: dict[str, Any] = {"receiver": "web\\.hook", "status": "firing", "alerts": [alert],
                            "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}",
                            "externalURL": "http://am:9093", "truncatedAlerts": 0}
    body.update(overrides)
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_every_real_alertmanager_fixture_parses(path: Path) -> None:
    """Each body captured from Alertmanager 0.25 parses, one record per alert, AM's
    fingerprint reproduced, Go zero endsAt read as "no end"."""
    raw = json.loads(path.read_text())
    records = parse_webhook(path.read_bytes(), received_at=NOW)
    assert len(records) == len(raw["alerts"])
    for record, alert in zip(records, raw["alerts"], strict=True):
        assert record.source == "alertmanager"
        assert record.alert.fingerprint == alert["fingerprint"]
        assert record.alert.status == alert["status"]
        assert dict(record.alert.labels) == alert["labels"]
        assert record.meta["version"] == "4"
        assert record.meta["receiver"] == raw["receiver"]
        assert record.meta["group_key"] == raw["groupKey"]
        if alert["endsAt"].startswith("0001-"):
            assert record.alert.ends_at is None
        assert record.alert.starts_at.tzinfo is not None


def test_corpus_is_complete() -> None:
    """The copied third-party corpus is all there (34 bodies)."""
    assert len(CORPUS_FILES) == 34


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_corpus_webhook_body_is_accepted_or_rejected_on_purpose(path: Path) -> None:
    """Third-party bodies (version missing/"3"/0, no groupKey, no status, integer groupKey)
    parse with recomputed fingerprints; the three non-webhook bodies are rejected clearly."""
    if path.name in CORPUS_REJECTED:
        reason, words = CORPUS_REJECTED[path.name]
        with pytest.raises(WebhookPayloadError) as info:
            parse_webhook(path.read_bytes(), received_at=NOW)
        assert info.value.reason == reason
        assert words in str(info.value)
        return
    raw = json.loads(path.read_text())
    records = parse_webhook(path.read_bytes(), received_at=NOW)
    assert len(records) == len(raw["alerts"])
    for record in records:
        assert record.alert.fingerprint == fingerprint(record.alert.labels)
        assert record.alert.status in ("firing", "resolved")
        assert set(record.meta) >= {"receiver", "group_key", "external_url", "version"}
        assert all(isinstance(v, str) for v in record.meta.values())


def test_untrusted_fingerprint_is_recomputed() -> None:
    """A sender's fingerprint that does not match the labels is replaced by ours."""
    (record,) = parse_webhook(_body(), received_at=NOW)
    assert record.alert.fingerprint == fingerprint(
        {"alertname": "DiskFull", "instance": "db-1", "severity": "warning"}
    )
    assert record.alert.fingerprint != "0000000000000000"


@pytest.mark.parametrize(
    ("version", "expected"), [("4", "4"), (0, "0"), ("3", "3"), (None, "")]
)
def test_version_may_be_string_integer_or_missing(version: object, expected: str) -> None:
    """version is informational: "4", "3", the integer 0 and absent are all accepted."""
    body = json.loads(_body())
    if version is None:
        del body["version"]
    else:
        body["version"] = version
    (record,) = parse_webhook(json.dumps(body), received_at=NOW)
    assert record.meta["version"] == expected


def test_envelope_meta_strings() -> None:
    """Meta is strings only; the receiver's QuoteMeta escaping is undone; groupKey int ok."""
    (record,) = parse_webhook(_body(groupKey=43434343434343434343), received_at=NOW)
    assert record.meta == {"receiver": "web.hook", "group_key": "43434343434343434343",
                           "external_url": "http://am:9093", "version": "4"}
    (truncated,) = parse_webhook(_body(truncatedAlerts=3), received_at=NOW)
    assert truncated.meta["truncated_alerts"] == "3"


def test_missing_status_is_derived_from_ends_at() -> None:
    """Without status: endsAt in the past → resolved; zero time or future → firing."""
    past = parse_webhook(_body(alert={"status": None, "endsAt": "2029-12-31T23:00:00Z"}),
                         received_at=NOW)
    zero = parse_webhook(_body(alert={"status": None}), received_at=NOW)
    now = parse_webhook(_body(alert={"status": None, "endsAt": "2030-01-01T01:00:00+01:00"}),
                        received_at=NOW)
    future = parse_webhook(_body(alert={"status": None, "endsAt": "2030-01-01T02:00:00Z"}),
                           received_at=NOW)
    assert past[0].alert.status == "resolved"
    assert now[0].alert.status == "resolved"  # 01:00+01:00 is NOW: it has ended
    assert zero[0].alert.status == "firing"
    assert future[0].alert.status == "firing"


def test_missing_times_and_empty_generator_url() -> None:
    """No startsAt → received time; endsAt "" or absent → None; generatorURL "" kept."""
    body = json.loads(_body())
    alert = body["alerts"][0]
    del alert["startsAt"]
    alert["endsAt"] = ""
    del alert["generatorURL"]
    (record,) = parse_webhook(json.dumps(body), received_at=NOW)
    assert record.alert.starts_at == NOW
    assert record.alert.ends_at is None
    assert record.alert.generator_url == ""


def test_times_are_normalised_to_utc() -> None:
    """A startsAt with a zone offset becomes the same instant in UTC."""
    (record,) = parse_webhook(_body(alert={"startsAt": "2018-03-07T06:33:21.873077559-05:00"}),
                              received_at=NOW)
    assert record.alert.starts_at == datetime(2018, 3, 7, 11, 33, 21, 873077, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    """Fields from newer Alertmanager versions (routeLabels, notification_reason) are ignored."""
    body = json.loads(_body(routeLabels={"a": "b"}, notification_reason="x"))
    body["alerts"][0]["extra"] = {"nested": [1, 2]}
    assert len(parse_webhook(json.dumps(body), received_at=NOW)) == 1


BAD: list[tuple[str, bytes, str, str | None, str]] = [
    ("malformed", b'{"alerts": [', "malformed_json", None, "malformed JSON: EOF while parsing"),
    ("not utf-8", b"\xff\xfe", "malformed_json", None, "malformed JSON"),
    ("list body", b"[]", "not_an_object", None, "must be a JSON object"),
    ("no alerts", b"{}", "invalid_payload", "alerts", "alerts is required"),
    ("empty alerts", b'{"alerts": []}', "empty_alerts", "alerts", "at least one alert"),
    ("alerts not list", b'{"alerts": {}}', "invalid_payload", "alerts",
     "alerts must be a list, not an object"),
    ("alert not object", b'{"alerts": [1]}', "invalid_payload", "alerts.0",
     "alerts.0 must be an object, not a number"),
    ("no labels", b'{"alerts": [{}]}', "invalid_payload", "alerts.0.labels",
     "alerts.0.labels is required"),
    ("empty labels", b'{"alerts": [{"labels": {}}]}', "invalid_payload", "alerts.0.labels",
     "must contain at least one label"),
    ("labels null", b'{"alerts": [{"labels": null}]}', "invalid_payload", "alerts.0.labels",
     "must be an object, not null"),
    ("label int", b'{"alerts": [{"labels": {"severity": 3}}]}', "invalid_payload",
     "alerts.0.labels.severity", "alerts.0.labels.severity must be a string, not a number"),
    ("bad status", b'{"alerts": [{"labels": {"a": "b"}, "status": "open"}]}', "invalid_payload",
     "alerts.0.status", "must be 'firing' or 'resolved'"),
    ("bad startsAt", b'{"alerts": [{"labels": {"a": "b"}, "startsAt": "yesterday"}]}',
     "invalid_payload", "alerts.0.startsAt", "must be an RFC 3339 time"),
    ("naive startsAt", b'{"alerts": [{"labels": {"a": "b"}, "startsAt": "2024-01-01T00:00:00"}]}',
     "invalid_payload", "alerts.0.startsAt", "must carry a time zone offset"),
    ("numeric startsAt", b'{"alerts": [{"labels": {"a": "b"}, "startsAt": 1700000000}]}',
     "invalid_payload", "alerts.0.startsAt", "RFC 3339 time string"),
    ("bad endsAt", b'{"alerts": [{"labels": {"a": "b"}, "endsAt": "soon"}]}', "invalid_payload",
     "alerts.0.endsAt", "alerts.0.endsAt must be an RFC 3339 time"),
    ("groupKey list", b'{"alerts": [{"labels": {"a": "b"}}], "groupKey": []}', "invalid_payload",
     "groupKey", "groupKey must be a string or an integer, not a list"),
    ("second alert bad", b'{"alerts": [{"labels": {"a": "b"}}, {"labels": {"a": 1}}]}',
     "invalid_payload", "alerts.1.labels.a", "alerts.1.labels.a must be a string"),
]


@pytest.mark.parametrize(("name", "body", "reason", "location", "words"), BAD,
                         ids=[case[0] for case in BAD])
def test_bad_input_is_rejected_with_location_and_plain_words(
    name: str, body: bytes, reason: str, location: str | None, words: str
) -> None:
    """Each bad body raises a 400 PayloadError naming where (dotted path) and what."""
    with pytest.raises(WebhookPayloadError) as info:
        parse_webhook(body, received_at=NOW)
    assert info.value.status == 400
    assert info.value.reason == reason
    assert info.value.location == location
    assert words in str(info.value)


def test_several_problems_are_counted() -> None:
    """The message reports the first problem and how many more there are."""
    body = (b'{"alerts": [{"labels": {"a": 1}}, {"labels": {}},'
            b' {"labels": {"b": "c"}, "status": 1}]}')
    with pytest.raises(WebhookPayloadError, match=r"\(and 2 more problems\)"):
        parse_webhook(body, received_at=NOW)


def test_count_alerts_on_rejection_path() -> None:
    """count_alerts counts alert entries of any JSON object, and 0 for unparsable bodies."""
    assert count_alerts(b'{"alerts": [1, 2, 3]}') == 3
    assert count_alerts(b"[1, 2]") == 0
    assert count_alerts(b"{") == 0
