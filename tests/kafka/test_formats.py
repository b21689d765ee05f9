"""Decoding Kafka messages into intake records (adapters.kafka.formats)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.kafka.formats import FORMAT_HEADER, KafkaMessageError, MessageMeta, decode_message
from router.config.kafka import KafkaLabelsConfig, MessageFormat
from router.fingerprint import fingerprint

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MESSAGE_TS = datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
NO_LABELS = KafkaLabelsConfig()


def _meta(**changes: object) -> MessageMeta:
    fields: dict[str, object] = {
        "topic": "alerts", "partition": 2, "offset": 41,
        "timestamp_ms": int(MESSAGE_TS.timestamp() * 1000), "key": b"k1", "headers": (),
    }
    fields.update(changes)
    return MessageMeta(**fields)  # type: ignore[arg-type]


def _decode(value: object, fmt: MessageFormat, *, labels: KafkaLabelsConfig = NO_LABELS,
            meta: MessageMeta | None = None) -> list:  # type: ignore[type-arg]
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return decode_message(raw, meta or _meta(), default_format=fmt, labels=labels, now=NOW)


def test_webhook_body_becomes_one_record_per_alert() -> None:
    """A v4 webhook body decodes like the HTTP webhook, with the Kafka position in meta."""
    body = {"version": "4", "receiver": "r", "groupKey": "g",
            "alerts": [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"},
                        "endsAt": "2024-05-01T11:00:00Z"}]}
    records = _decode(body, "alertmanager_webhook")
    assert [r.alert.labels["alertname"] for r in records] == ["A", "B"]
    assert [r.alert.status for r in records] == ["firing", "resolved"]
    assert records[0].source == "kafka"
    assert records[0].meta["group_key"] == "g"
    assert records[0].meta["kafka_offset"] == "41"
    # the message timestamp stands in for a missing startsAt: a redelivery decodes the same
    assert records[0].alert.starts_at == MESSAGE_TS


def test_single_alert_object() -> None:
    """One Alertmanager-shaped alert object decodes to one record; fingerprint recomputed."""
    alert = {"labels": {"alertname": "DiskFull", "instance": "db-1"}, "fingerprint": "bogus",
             "annotations": {"summary": "s"}, "startsAt": "2024-05-01T10:00:00+02:00",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://x"}
    [record] = _decode(alert, "alertmanager_alert")
    assert record.alert.fingerprint == fingerprint({"alertname": "DiskFull", "instance": "db-1"})
    assert record.alert.starts_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert record.alert.ends_at is None
    assert record.alert.status == "firing"
    assert record.alert.generator_url == "http://x"


def test_generic_event_is_mapped_to_an_alert() -> None:
    """name → alertname; source and severity become labels over same-named labels."""
    event = {"source": "billing", "name": "PaymentsFailing", "severity": "critical",
             "status": "firing", "labels": {"region": "eu", "severity": "low"},
             "annotations": {"summary": "5% failed"}, "starts_at": "2024-05-01T10:00:00Z"}
    [record] = _decode(event, "event")
    assert dict(record.alert.labels) == {"region": "eu", "severity": "critical",
                                         "alertname": "PaymentsFailing", "source": "billing"}
    assert record.alert.annotations == {"summary": "5% failed"}
    assert record.alert.fingerprint == fingerprint(record.alert.labels)


def test_event_dedup_key_is_the_identity() -> None:
    """Two events with one dedup_key and different labels are the same alert."""
    first = {"source": "s", "name": "N", "dedup_key": "abc", "labels": {"a": "1"}}
    second = {"source": "s", "name": "N", "dedup_key": "abc", "labels": {"a": "2"},
              "status": "resolved"}
    a = _decode(first, "event")[0].alert
    b = _decode(second, "event", labels=KafkaLabelsConfig(topic="kafka_topic"))[0].alert
    assert a.fingerprint == b.fingerprint
    assert b.status == "resolved"


def test_metadata_labels_when_configured() -> None:
    """Topic, key, partition and chosen headers become labels; the alert's own label wins."""
    labels = KafkaLabelsConfig(topic="kafka_topic", key="kafka_key", partition="kafka_partition",
                               headers={"team": "team", "env": "env"})
    meta = _meta(headers=(("team", b"db"), ("env", b"prod"), ("other", b"x")))
    [record] = _decode({"labels": {"alertname": "A", "env": "staging"}}, "alertmanager_alert",
                       labels=labels, meta=meta)
    assert dict(record.alert.labels) == {
        "alertname": "A", "env": "staging", "kafka_topic": "alerts", "kafka_key": "k1",
        "kafka_partition": "2", "team": "db",
    }
    assert record.alert.fingerprint == fingerprint(record.alert.labels)


def test_format_header_overrides_the_topic_format() -> None:
    """A ``tocsin-format`` header picks the format; an unknown one is refused."""
    meta = _meta(headers=((FORMAT_HEADER, b"alertmanager_alert"),))
    [record] = _decode({"labels": {"alertname": "A"}}, "event", meta=meta)
    assert record.alert.labels == {"alertname": "A"}
    with pytest.raises(KafkaMessageError) as info:
        _decode({"labels": {"alertname": "A"}}, "event",
                meta=_meta(headers=((FORMAT_HEADER, b"xml"),)))
    assert info.value.reason == "unknown_format"


@pytest.mark.parametrize(
    ("value", "fmt", "reason"),
    [
        (b"", "alertmanager_webhook", "empty"),
        (b" \n\t ", "event", "empty"),
        (b"{not json", "alertmanager_webhook", "malformed_json"),
        (b"{not json", "event", "malformed_json"),
        ({"alerts": []}, "alertmanager_webhook", "empty_alerts"),
        ({"labels": {}}, "alertmanager_alert", "invalid_payload"),
        ({"name": "N"}, "event", "invalid_payload"),
        ([1, 2], "alertmanager_alert", "invalid_payload"),
    ],
)
def test_unacceptable_messages_raise_with_a_reason(
    value: object, fmt: MessageFormat, reason: str
) -> None:
    """Every refused message raises KafkaMessageError with a short reason for metrics."""
    with pytest.raises(KafkaMessageError) as info:
        _decode(value, fmt)
    assert info.value.reason == reason
    assert str(info.value)


def test_each_message_timestamp_stands_in_for_its_missing_start() -> None:
    """Alternating timestamps decode to their own times (the kept last one never leaks)."""
    stamps = [MESSAGE_TS, MESSAGE_TS + timedelta(seconds=1), MESSAGE_TS]
    starts = [
        _decode({"alerts": [{"labels": {"alertname": "A"}}]}, "alertmanager_webhook",
                meta=_meta(timestamp_ms=int(at.timestamp() * 1000)))[0].alert.starts_at
        for at in stamps
    ]
    assert starts == stamps
    [record] = _decode({"alerts": [{"labels": {"alertname": "A"}}]}, "alertmanager_webhook",
                       meta=_meta(timestamp_ms=None))
    assert record.alert.starts_at == NOW
