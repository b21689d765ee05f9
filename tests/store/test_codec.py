"""The store's text encodings: fixed-width UTC timestamps and the intake alert JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import orjson
import pytest

from router.models import Alert
from router.store.sqlite.codec import alert_from_json, alert_to_json, ts

_PARIS = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=_PARIS),
        datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(0))),
    ],
)
def test_ts_is_fixed_width_utc_whatever_the_zone(value: datetime) -> None:
    """ts() gives the same fixed-width UTC text for UTC and for any other offset."""
    text = ts(value)
    assert len(text) == len("2024-05-01T12:00:00.000000+00:00")
    assert text.endswith("+00:00")
    assert datetime.fromisoformat(text) == value


def test_equal_instants_encode_the_same_starts_at() -> None:
    """Alerts starting at the same instant in different zones store the same UTC text."""
    in_utc = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    in_paris = in_utc.astimezone(_PARIS)
    texts = [
        orjson.loads(alert_to_json(_alert(starts_at)))["starts_at"]
        for starts_at in (in_utc, in_paris, in_utc)
    ]
    assert texts == ["2024-05-01T12:00:00.000000+00:00"] * 3


def test_alert_json_round_trips_with_mapping_labels() -> None:
    """alert_to_json accepts any Mapping for labels/annotations and decodes back equal."""
    alert = Alert(
        labels=MappingProxyType({"alertname": "HostDown", "instance": "a"}),
        annotations=MappingProxyType({"summary": "down"}),
        status="resolved",
        starts_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        ends_at=datetime(2024, 5, 1, 13, 0, 0, 1, tzinfo=_PARIS),
        generator_url="http://prometheus/graph",
        fingerprint="0123456789abcdef",
    )
    back = alert_from_json(alert_to_json(alert))
    assert dict(back.labels) == dict(alert.labels)
    assert dict(back.annotations) == dict(alert.annotations)
    assert (back.starts_at, back.ends_at) == (alert.starts_at, alert.ends_at)
    assert back.ends_at is not None and back.ends_at.tzinfo == UTC


def _alert(starts_at: datetime) -> Alert:
    return Alert(
        labels={"alertname": "HostDown"},
        annotations={},
        status="firing",
        starts_at=starts_at,
        ends_at=None,
        generator_url="",
        fingerprint="0123456789abcdef",
    )
