"""POST /webhook/alertmanager over real HTTP and a real SQLite store.

Every rejection asserts the status, the JSON error (text and location), the metric and
that nothing reached the intake log; acceptance asserts the rows are durable by the time
the 200 arrives.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from router.fingerprint import fingerprint

from .conftest import ClientFactory, metric, store_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
SINGLE = (FIXTURES / "01-firing-single.json").read_bytes()
GROUPED = (FIXTURES / "04-group-partial-resolved.json").read_bytes()
URL = "/webhook/alertmanager"
JSON = {"Content-Type": "application/json"}


def _rejected(status: int, reason: str) -> float:
    return metric("tocsin_webhook_rejected_requests_total", status=str(status), reason=reason)


def _alerts(result: str) -> float:
    return metric("tocsin_alerts_received_total", source="alertmanager", result=result)


async def _nothing_persisted(client: TestClient[Any, Any]) -> None:
    counts = await store_of(client).counts()
    assert counts["intake_pending"] == 0, counts
    assert await store_of(client).fetch_intake(10) == []


async def test_good_request_is_durable_before_the_200(client: TestClient[Any, Any]) -> None:
    """A real Alertmanager body (4 alerts) answers 200 only once 4 intake rows exist."""
    before = _alerts("accepted")
    response = await client.post(URL, data=GROUPED, headers=JSON)
    assert response.status == 200
    assert await response.json() == {"status": "success", "accepted": 4}
    rows = await store_of(client).fetch_intake(10)
    assert len(rows) == 4
    expected = [a["labels"] for a in json.loads(GROUPED)["alerts"]]
    assert [dict(r.alert.labels) for _, r in rows] == expected
    assert all(r.alert.fingerprint == fingerprint(r.alert.labels) for _, r in rows)
    assert [r.alert.status for _, r in rows] == ["resolved", "firing", "firing", "firing"]
    assert rows[0][1].meta["group_key"] == '{}:{alertname="HostDown"}'
    assert _alerts("accepted") - before == 4


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.am+json"])
async def test_json_content_types_are_accepted(
    client: TestClient[Any, Any], content_type: str
) -> None:
    """application/json with parameters, any case, and +json types are accepted."""
    response = await client.post(URL, data=SINGLE, headers={"Content-Type": content_type})
    assert response.status == 200


async def test_missing_content_type_is_accepted_when_body_parses(
    client: TestClient[Any, Any],
) -> None:
    """No Content-Type at all: the body decides (documented choice)."""
    response = await client.post(URL, data=SINGLE, skip_auto_headers=["Content-Type"])
    assert response.status == 200
    assert (await store_of(client).counts())["intake_pending"] == 1


BAD_BODIES: list[tuple[str, bytes, str, str | None, str]] = [
    ("malformed", b'{"alerts": [', "malformed_json", None,
     "malformed JSON: EOF while parsing a list at line 1 column 12"),
    ("empty body", b"", "malformed_json", None, "the body is empty"),
    ("not an object", b'[{"labels": {"a": "b"}}]', "not_an_object", None,
     "the body must be a JSON object"),
    ("empty alert list", b'{"alerts": []}', "empty_alerts", "alerts",
     "alerts must contain at least one alert"),
    ("label not a string", b'{"alerts": [{"labels": {"severity": 3}}]}', "invalid_payload",
     "alerts.0.labels.severity", "alerts.0.labels.severity must be a string, not a number"),
    ("labels missing", b'{"alerts": [{"annotations": {}}]}', "invalid_payload",
     "alerts.0.labels", "alerts.0.labels is required"),
    ("bad time", b'{"alerts": [{"labels": {"a": "b"}, "startsAt": "noon"}]}', "invalid_payload",
     "alerts.0.startsAt", "must be an RFC 3339 time"),
]


@pytest.mark.parametrize(("name", "body", "reason", "location", "words"), BAD_BODIES,
                         ids=[case[0] for case in BAD_BODIES])
async def test_bad_body_is_400_with_location_and_nothing_persisted(
    client: TestClient[Any, Any], name: str, body: bytes, reason: str, location: str | None,
    words: str,
) -> None:
    """Malformed JSON, wrong types, empty alert list: 400, JSON error, counted, not stored."""
    before = _rejected(400, reason)
    response = await client.post(URL, data=body, headers=JSON)
    assert response.status == 400
    answer = await response.json()
    assert answer["status"] == "error"
    assert words in answer["error"]
    assert answer.get("location") == location
    assert _rejected(400, reason) - before == 1
    await _nothing_persisted(client)


async def test_rejected_alerts_are_counted(client: TestClient[Any, Any]) -> None:
    """A rejected body's alert entries are counted as rejected alerts."""
    before = _alerts("rejected")
    body = b'{"alerts": [{"labels": {"a": "b"}}, {"labels": {"a": 1}}]}'
    response = await client.post(URL, data=body, headers=JSON)
    assert response.status == 400
    assert _alerts("rejected") - before == 2
    await _nothing_persisted(client)


async def test_one_bad_alert_rejects_the_whole_request(client: TestClient[Any, Any]) -> None:
    """No partial intake: a valid alert next to an invalid one is not stored either."""
    body = json.loads(GROUPED)
    body["alerts"][3]["labels"]["instance"] = None
    response = await client.post(URL, data=json.dumps(body), headers=JSON)
    assert response.status == 400
    assert (await response.json())["location"] == "alerts.3.labels.instance"
    await _nothing_persisted(client)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(client: TestClient[Any, Any], content_type: str) -> None:
    """A non-JSON Content-Type is 415 with a hint, counted, and nothing stored."""
    before = _rejected(415, "unsupported_media_type")
    response = await client.post(URL, data=SINGLE, headers={"Content-Type": content_type})
    assert response.status == 415
    answer = await response.json()
    assert answer == {"status": "error",
                      "error": f"unsupported Content-Type '{content_type}': "
                               "send application/json"}
    assert _rejected(415, "unsupported_media_type") - before == 1
    await _nothing_persisted(client)


async def test_body_over_limit_by_content_length_is_413(make_client: ClientFactory) -> None:
    """A declared Content-Length over webhook.max_body_bytes is refused before reading."""
    client = await make_client(webhook={"max_body_bytes": 2048})
    before = _rejected(413, "too_large")
    body = json.loads(SINGLE)
    body["alerts"][0]["annotations"]["description"] = "x" * 4000
    response = await client.post(URL, data=json.dumps(body), headers=JSON)
    assert response.status == 413
    answer = await response.json()
    assert "exceeds the limit of 2048 bytes (webhook.max_body_bytes)" in answer["error"]
    assert _rejected(413, "too_large") - before == 1
    await _nothing_persisted(client)


async def test_chunked_body_over_limit_is_413(make_client: ClientFactory) -> None:
    """A chunked body (no Content-Length) over the limit is cut off at the limit: 413."""
    client = await make_client(webhook={"max_body_bytes": 2048})

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    before = _rejected(413, "too_large")
    response = await client.post(URL, data=chunks(), headers=JSON)
    assert response.status == 413
    assert "webhook.max_body_bytes" in (await response.json())["error"]
    assert _rejected(413, "too_large") - before == 1
    await _nothing_persisted(client)


# --------------------------------------------------------------------------- auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_bearer_token_as_alertmanager_sends_it(make_client: ClientFactory) -> None:
    """http_config.authorization.credentials → 'Authorization: Bearer T' is accepted."""
    client = await make_client(webhook={"bearer_token": "s3cret-token"})
    response = await client.post(
        URL, data=SINGLE, headers={**JSON, "Authorization": "Bearer s3cret-token"}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    ("authorization", "words"),
    [
        (None, "missing credentials: send an Authorization header"),
        ("Bearer wrong", "invalid bearer token"),
        ("Bearer s3cret-token-but-longer", "invalid bearer token"),
        ("Token s3cret-token", "unsupported authorization scheme: use Bearer"),
        (_basic("am", "s3cret-token"), "unsupported authorization scheme: use Bearer"),
    ],
)
async def test_bad_or_missing_token_is_401_with_challenge(
    make_client: ClientFactory, authorization: str | None, words: str
) -> None:
    """Without the right token: 401, WWW-Authenticate Bearer, counted, nothing stored."""
    client = await make_client(webhook={"bearer_token": "s3cret-token"})
    headers = dict(JSON)
    if authorization is not None:
        headers["Authorization"] = authorization
    before = _rejected(401, "unauthorized")
    response = await client.post(URL, data=SINGLE, headers=headers)
    assert response.status == 401
    assert response.headers.getall("WWW-Authenticate") == ['Bearer realm="tocsin"']
    assert await response.json() == {"status": "error", "error": words}
    assert _rejected(401, "unauthorized") - before == 1
    await _nothing_persisted(client)


async def test_basic_auth_as_alertmanager_sends_it(make_client: ClientFactory) -> None:
    """http_config.basic_auth → 'Authorization: Basic base64(user:pass)' is accepted."""
    client = await make_client(
        webhook={"basic_auth": {"username": "alertmanager", "password": "pa:ss wörd"}}
    )
    response = await client.post(
        URL, data=SINGLE, headers={**JSON, "Authorization": _basic("alertmanager", "pa:ss wörd")}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "authorization",
    [_basic("alertmanager", "wrong"), _basic("someone", "pa:ss wörd"), "Basic !!notbase64",
     "Basic " + base64.b64encode(b"no-colon").decode()],
)
async def test_wrong_basic_auth_is_401(make_client: ClientFactory, authorization: str) -> None:
    """Wrong user, wrong password or garbage: 401 with a Basic challenge, nothing stored."""
    client = await make_client(
        webhook={"basic_auth": {"username": "alertmanager", "password": "pa:ss wörd"}}
    )
    before = _rejected(401, "unauthorized")
    response = await client.post(URL, data=SINGLE, headers={**JSON, "Authorization": authorization})
    assert response.status == 401
    assert response.headers.getall("WWW-Authenticate") == ['Basic realm="tocsin", charset="UTF-8"']
    assert (await response.json())["error"] == "invalid basic auth credentials"
    assert _rejected(401, "unauthorized") - before == 1
    await _nothing_persisted(client)


async def test_both_schemes_configured_accepts_either(make_client: ClientFactory) -> None:
    """With a token and basic auth configured, each one alone is enough; 401 offers both."""
    client = await make_client(
        webhook={"bearer_token": "tok", "basic_auth": {"username": "u", "password": "p"}}
    )
    ok_bearer = await client.post(URL, data=SINGLE,
                                  headers={**JSON, "Authorization": "Bearer tok"})
    ok_basic = await client.post(URL, data=SINGLE,
                                 headers={**JSON, "Authorization": _basic("u", "p")})
    denied = await client.post(URL, data=SINGLE, headers=JSON)
    assert (ok_bearer.status, ok_basic.status, denied.status) == (200, 200, 401)
    assert len(denied.headers.getall("WWW-Authenticate")) == 2


async def test_auth_is_checked_before_the_body(make_client: ClientFactory) -> None:
    """An unauthenticated client learns nothing about the body: 401 even for bad JSON."""
    client = await make_client(webhook={"bearer_token": "tok"})
    response = await client.post(URL, data=b"{", headers=JSON)
    assert response.status == 401


# --------------------------------------------------------------------------- store down


async def test_store_failure_is_503_with_retry_after(client: TestClient[Any, Any]) -> None:
    """If the intake write fails, the answer is 503 + Retry-After (Alertmanager retries)."""
    await store_of(client).close()
    before = _rejected(503, "store_unavailable")
    response = await client.post(URL, data=SINGLE, headers=JSON)
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    answer = await response.json()
    assert answer["status"] == "error"
    assert "retry later" in answer["error"]
    assert _rejected(503, "store_unavailable") - before == 1
