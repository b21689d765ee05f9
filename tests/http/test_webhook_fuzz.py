"""Fuzz of POST /webhook/alertmanager (Hypothesis): no body is ever answered 5xx, and a
rejected request leaves nothing in the intake log.

One app (real aiohttp server on 127.0.0.1, real SQLite store) takes every example, with
small limits so that each ``webhook.max_*`` branch is reached. Bodies: payload-shaped
JSON with odd types, sizes and times (offsets that overflow UTC, Go's zero time, dates
that do not exist), arbitrary JSON, arbitrary bytes, and mutated real payloads; sent
plain, gzip, deflate, with a wrong or unknown Content-Encoding, and under various
Content-Types.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.app import create_app
from router.config import ServiceConfig
from router.http import STORE, ServiceState
from router.rules import load_rules

from .conftest import REPO

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
REAL_BODIES = [path.read_bytes() for path in sorted(FIXTURES.glob("*.json"))
               if "headers" not in path.name]
URL = "/webhook/alertmanager"
EXAMPLES = 3000
LIMITS = {"max_body_bytes": 65_536, "max_alerts": 10, "max_labels": 5,
          "max_label_bytes": 150, "max_annotation_bytes": 200}

# --------------------------------------------------------------------------- strategies

_text = st.text(max_size=12) | st.sampled_from(["", "é" * 200, "\x00", "a" * 400, "🔔"])
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_text, inner, max_size=4), max_leaves=6)


@st.composite
def _times(draw: st.DrawFn) -> object:
    """RFC 3339 times of any year and offset, Go's zero time, impossible dates, non-times."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
        minutes = draw(st.integers(-1439, 1439))
        stamp = moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()
        return stamp.replace("+00:00", "Z") if draw(st.booleans()) else stamp
    if kind == 1:
        return draw(st.sampled_from([
            "0001-01-01T00:00:00Z", "9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.999999999Z", "2024-02-30T00:00:00Z", "2024-01-31T12:00:00",
            "2024-01-31T25:00:00Z", "", "noon", "1e309"]))
    if kind == 2:
        return draw(st.datetimes(timezones=st.just(UTC))).isoformat()
    return draw(_scalar)


# Mostly common words (cheap to draw), sometimes any text or a long or non-ASCII value.
_names = st.sampled_from(["alertname", "severity", "instance", "job", "team", "é", "x" * 40])
_values = st.sampled_from(["HostDown", "critical", "host-1:9100", "", "é" * 40, "v" * 70])
_label_map = st.dictionaries(_names | st.text(min_size=1, max_size=8),
                             _values | st.text(max_size=20), min_size=1, max_size=6)
_annotation_map = st.dictionaries(st.sampled_from(["summary", "description", "runbook_url"]),
                                  _values | st.text(max_size=40) | st.just("d" * 190),
                                  max_size=3)
_valid_time = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1),
                           timezones=st.just(UTC)).map(lambda t: t.isoformat())
#: Mostly well-formed alerts (so that limits, times and storage are reached), some odd.
_alert = st.fixed_dictionaries(
    {"labels": _label_map | _label_map | _label_map | _json},
    optional={"annotations": _annotation_map | _json,
              "status": st.sampled_from(["firing", "resolved", "firing", "FIRING"]) | _scalar,
              "startsAt": _valid_time | _times(), "endsAt": _valid_time | _times(),
              "generatorURL": _text | _scalar, "fingerprint": _scalar},
)
_valid_alert = st.fixed_dictionaries(
    {"labels": _label_map},
    optional={"annotations": _annotation_map, "status": st.sampled_from(["firing", "resolved"]),
              "startsAt": _valid_time, "endsAt": _valid_time | st.just("0001-01-01T00:00:00Z"),
              "generatorURL": st.text(max_size=40)},
)
_payload = st.fixed_dictionaries(
    {"alerts": st.lists(_valid_alert, min_size=1, max_size=6)
     | st.lists(_valid_alert, min_size=1, max_size=3).flatmap(
         lambda good: st.lists(_alert, max_size=2).map(lambda odd: good + odd))
     | st.lists(_alert | _json, max_size=3)},
    optional={"version": _scalar, "groupKey": _scalar, "receiver": _scalar,
              "status": _scalar, "truncatedAlerts": _scalar, "externalURL": _scalar,
              "commonLabels": _json},
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(REAL_BODIES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body) - 1))
        body[at] = draw(st.integers(0, 255))
    return bytes(body[: draw(st.integers(0, len(body)))])


_bodies = st.one_of(
    _payload.map(lambda p: json.dumps(p).encode()),
    _payload.map(lambda p: json.dumps(p, ensure_ascii=False).encode("utf-8")),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    _mutated(),
    st.sampled_from([b"[" * 50_000, b"{" * 300, b" " * 70_000, b"\xef\xbb\xbf{}",
                     json.dumps({"alerts": [{"labels": {"a": "b"}}] * 11}).encode(),
                     json.dumps({"alerts": [{"labels": {"a": "b"}}]}).encode("utf-16")]),
)
_content_types = st.sampled_from(["application/json"] * 6 + [
    "application/json; charset=utf-8", "application/vnd.x+json", "APPLICATION/JSON", None,
    "text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin-1",
])


def _encode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    return body  # "gzip-lie", "x-unknown", None: sent as is


_encodings = st.sampled_from([None, None, None, "gzip", "deflate", "gzip-lie", "x-unknown"])

# --------------------------------------------------------------------------- the test


@pytest.fixture
async def fuzz_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """One app with small webhook limits on a real socket and SQLite store."""
    config = ServiceConfig.model_validate({
        # synchronous=normal: no fsync per accepted request (speed; durability is not tested)
        "state_url": f"sqlite:///{tmp_path / 'state' / 'tocsin.db'}?synchronous=normal",
        "webhook": LIMITS})
    app = create_app(config, rules=load_rules([REPO / "rules"]), state=ServiceState(),
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_webhook_fuzz_never_5xx_and_rejections_persist_nothing(
    fuzz_client: TestClient[Any, Any],
) -> None:
    """3,000 odd bodies: each is a 200 that stored its alerts, or a 4xx that stored none."""
    store = fuzz_client.app[STORE]
    loop = asyncio.get_running_loop()
    seen: dict[int, int] = {}
    pending = [(await store.counts())["intake_pending"]]  # intake rows stored so far

    async def one(body: bytes, content_type: str | None, encoding: str | None) -> None:
        headers = {} if content_type is None else {"Content-Type": content_type}
        if encoding is not None:
            headers["Content-Encoding"] = "gzip" if encoding == "gzip-lie" else encoding
        response = await fuzz_client.post(
            URL, data=_encode(body, encoding), headers=headers,
            skip_auto_headers=["Content-Type"] if content_type is None else [])
        status = response.status
        seen[status] = seen.get(status, 0) + 1
        text = await response.text()
        assert status < 500, (status, text, body[:200])
        answer = json.loads(text)
        now = (await store.counts())["intake_pending"]
        stored, pending[0] = now - pending[0], now
        if status == 200:
            assert stored == answer["accepted"] > 0, (answer, stored)
        else:
            assert 400 <= status < 500 and answer["status"] == "error", (status, answer)
            assert stored == 0, (status, answer, stored)

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(body=_bodies, content_type=_content_types, encoding=_encodings)
    def check(body: bytes, content_type: str | None, encoding: str | None) -> None:
        future = asyncio.run_coroutine_threadsafe(one(body, content_type, encoding), loop)
        future.result(timeout=30)

    await asyncio.to_thread(check)
    print("statuses:", dict(sorted(seen.items())))
    assert sum(seen.values()) >= EXAMPLES
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 0 and seen.get(413, 0) > 0, seen
