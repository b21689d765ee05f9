"""Fingerprints are Prometheus' FNV-1a over sorted labels, checked on real payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.fingerprint import fingerprint

FIXTURES = Path(__file__).parent / "fixtures" / "alertmanager"


def _real_alerts() -> list[dict[str, object]]:
    alerts: list[dict[str, object]] = []
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name.endswith(".headers.json"):
            continue
        body = json.loads(path.read_text())
        alerts.extend(body.get("alerts", []))
    return alerts


@pytest.mark.parametrize("alert", _real_alerts(), ids=lambda a: str(a["fingerprint"]))
def test_matches_alertmanager_fingerprint(alert: dict[str, object]) -> None:
    """Our fingerprint equals the one the real Alertmanager computed."""
    labels = alert["labels"]
    assert isinstance(labels, dict)
    assert fingerprint(labels) == alert["fingerprint"]


def test_empty_label_set_is_the_offset_basis() -> None:
    """An empty label set hashes to FNV-1a's offset basis, as in Prometheus."""
    assert fingerprint({}) == "cbf29ce484222325"


def test_label_order_does_not_matter() -> None:
    """The hash is over sorted names, so insertion order is irrelevant."""
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})


def test_accelerated_and_reference_hashes_agree() -> None:
    """The C FNV-1a (when installed) and the pure-Python reference give the same hash."""
    from router.fingerprint import fnv1a_64, fnv1a_64_py

    for data in (b"", b"a", "é\xff🙂".encode(), bytes(range(256)) * 3):
        assert fnv1a_64(data) == fnv1a_64_py(data)


def test_fast_implementation_is_installed() -> None:
    """``fnv-c`` is a dependency: the fast path is really the one in use."""
    from router.fingerprint import fnv1a_64, fnv1a_64_py

    assert fnv1a_64 is not fnv1a_64_py
