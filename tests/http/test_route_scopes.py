"""Every route needs its scope when API tokens are configured (401 / 403 / allowed).

The table below is the contract of docs/service.md ("API tokens"). The first test
enumerates the app's registered routes: a new endpoint that is not in the table fails it,
so no route can be left open by mistake. On the old code (no scopes) every read route
answered 200 without credentials, which the 401 assertions refuse.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from router.config import ServiceConfig
from router.http.auth import auth_warnings
from router.push_keys import generate_vapid_keys

from .conftest import ClientFactory

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/alertmanager/02-firing-grouped-3.json"

#: (method, path) → the scope a token needs. HEAD routes follow their GET.
SCOPED: dict[tuple[str, str], str] = {
    ("POST", "/webhook/alertmanager"): "ingest",
    ("GET", "/api/v1/deliveries"): "read",
    ("GET", "/api/v1/intake"): "read",
    ("GET", "/api/v1/incidents"): "read",
    ("GET", "/api/v1/incidents/{incident_id}"): "read",
    ("GET", "/api/v1/audiences"): "read",
    ("GET", "/api/v1/audiences/{name}"): "read",
    ("POST", "/api/v1/incidents/{incident_id}/ack"): "operate",
    ("GET", "/metrics"): "read",
    ("GET", "/api/v1/push/subscriptions"): "read",
    ("POST", "/api/v1/push/subscriptions"): "operate",
    ("DELETE", "/api/v1/push/subscriptions/{id}"): "operate",
    ("POST", "/-/reload"): "operate",
}
#: Open whatever the config: the probes, the SNS webhook (each message is signed) and the
#: JSON 404/405 for unknown paths.
OPEN: set[tuple[str, str]] = {("GET", "/healthz"), ("GET", "/readyz"),
                              ("POST", "/webhook/sns"),  # authenticated by its SNS signature
                              ("*", "/{unmatched_path}")}
#: Open to anyone holding a signed link token (the token is the credential:
#: tests/http/test_ack_links.py).
TOKEN_LINKS: set[tuple[str, str]] = {("GET", "/ack/{token}"), ("POST", "/ack/{token}")}
TOKENS = {scope: f"{scope}-token-0123456789abcdef" for scope in
          ("ingest", "read", "operate", "admin")}
PUSH_TOKEN = "push-api-token-0123456789"
WEBHOOK_TOKEN = "webhook-token-0123456789"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _config(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "api": {"tokens": [{"name": f"{scope}-client", "token": token, "scopes": [scope]}
                           for scope, token in TOKENS.items()]},
        "webpush": {"vapid_private_key": generate_vapid_keys()[0],
                    "vapid_subject": "mailto:ops@example.com", "api_token": PUSH_TOKEN},
    }
    data.update(extra)
    return data


def _routes(client: TestClient[Any, Any]) -> set[tuple[str, str]]:
    return {(route.method, route.resource.canonical)
            for route in client.app.router.routes() if route.resource is not None}


def _concrete(path: str) -> str:
    return (path.replace("{incident_id}", "no-such-incident").replace("{id}", "1")
            .replace("{name}", "no-such-audience"))


async def _call(client: TestClient[Any, Any], method: str, path: str,
                headers: dict[str, str]) -> tuple[int, Any]:
    body = FIXTURE.read_bytes() if path == "/webhook/alertmanager" else b"{}"
    response = await client.request(method, _concrete(path), data=body if method in (
        "POST", "DELETE") else None, headers={**headers, "Content-Type": "application/json"})
    text = await response.text()
    return response.status, (json.loads(text) if text and method != "HEAD"
                             and response.content_type == "application/json" else text)


async def test_every_registered_route_is_in_the_scope_table(make_client: ClientFactory) -> None:
    """The app registers exactly the routes of the table (and their HEAD twins)."""
    client = await make_client(**_config())
    expected = set(SCOPED) | OPEN | TOKEN_LINKS
    expected |= {("HEAD", path) for method, path in expected if method == "GET"}
    assert _routes(client) == expected


@pytest.mark.parametrize(("method", "path"), sorted(SCOPED))
async def test_route_needs_its_scope(make_client: ClientFactory, method: str,
                                     path: str) -> None:
    """No credential: 401 + challenge; another scope: 403; its scope or admin: let in."""
    client = await make_client(**_config())
    scope = SCOPED[(method, path)]
    for probe in (method, "HEAD") if method == "GET" else (method,):
        status, body = await _call(client, probe, path, {})
        assert status == 401, (probe, path, body)
        wrong = next(s for s in TOKENS if s not in (scope, "admin"))
        status, body = await _call(client, probe, path, _bearer(TOKENS[wrong]))
        assert status == 403, (probe, path, wrong, body)
        if probe != "HEAD":
            assert body["status"] == "error"
            assert f"needs scope {scope!r}" in body["error"]
        for allowed in (scope, "admin"):
            status, body = await _call(client, probe, path, _bearer(TOKENS[allowed]))
            assert status not in (401, 403), (probe, path, allowed, body)
    response = await client.request(method, _concrete(path))
    assert response.headers.getall("WWW-Authenticate")[0].startswith("Bearer realm=")


@pytest.mark.parametrize(("method", "path"), sorted(m for m in OPEN if m[0] == "GET"))
async def test_probes_stay_open(make_client: ClientFactory, method: str, path: str) -> None:
    """/healthz and /readyz answer without credentials even with tokens configured."""
    client = await make_client(**_config())
    assert (await client.request(method, path)).status == 200


async def test_unknown_path_is_a_json_404_without_credentials(
    make_client: ClientFactory,
) -> None:
    """The catch-all answers 404 (it serves nothing to protect)."""
    client = await make_client(**_config())
    assert (await client.get("/api/v1/nothing")).status == 404


async def test_open_without_any_credential_but_push(make_client: ClientFactory) -> None:
    """No api.tokens and no webhook credentials: open, except the push endpoints."""
    client = await make_client(**_config(api={}))
    for method, path in sorted(SCOPED):
        status, body = await _call(client, method, path, {})
        if path.startswith("/api/v1/push/"):
            assert status == 401, (method, path, body)
        else:
            assert status not in (401, 403), (method, path, body)


async def test_webhook_credentials_grant_ingest_only(make_client: ClientFactory) -> None:
    """webhook.bearer_token alone: the webhook accepts it; reads refuse it with 403."""
    client = await make_client(**_config(api={}, webhook={"bearer_token": WEBHOOK_TOKEN}))
    status, _ = await _call(client, "POST", "/webhook/alertmanager", _bearer(WEBHOOK_TOKEN))
    assert status == 200
    for method, path in (("GET", "/api/v1/incidents"), ("GET", "/metrics"),
                         ("POST", "/-/reload")):
        assert (await _call(client, method, path, {}))[0] == 401
        status, body = await _call(client, method, path, _bearer(WEBHOOK_TOKEN))
        assert status == 403
        assert "scope 'ingest' only" in body["error"]


async def test_webhook_basic_auth_and_api_tokens_together(make_client: ClientFactory) -> None:
    """With api.tokens, webhook.basic_auth still ingests and an ingest token does too."""
    import base64

    basic = "Basic " + base64.b64encode(b"alertmanager:pa55-word").decode()
    client = await make_client(**_config(
        webhook={"basic_auth": {"username": "alertmanager", "password": "pa55-word"}}))
    for headers in ({"Authorization": basic}, _bearer(TOKENS["ingest"])):
        assert (await _call(client, "POST", "/webhook/alertmanager", headers))[0] == 200
    denied = await client.post("/webhook/alertmanager", data=FIXTURE.read_bytes())
    assert denied.status == 401
    assert len(denied.headers.getall("WWW-Authenticate")) == 2  # Bearer and Basic
    assert (await _call(client, "GET", "/api/v1/incidents", {"Authorization": basic}))[0] == 403


async def test_push_token_only_opens_the_push_endpoints(make_client: ClientFactory) -> None:
    """webpush.api_token keeps working for subscriptions and is refused elsewhere."""
    client = await make_client(**_config())
    assert (await _call(client, "GET", "/api/v1/push/subscriptions",
                        _bearer(PUSH_TOKEN)))[0] == 200
    status, body = await _call(client, "GET", "/api/v1/deliveries", _bearer(PUSH_TOKEN))
    assert status == 403
    assert "push subscription endpoints only" in body["error"]


async def test_public_metrics_opens_only_metrics(make_client: ClientFactory) -> None:
    """api.public_metrics: /metrics answers without a token; the read API does not."""
    config = _config()
    config["api"]["public_metrics"] = True
    client = await make_client(**config)
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/api/v1/deliveries")).status == 401


async def test_hashed_and_file_tokens(make_client: ClientFactory, tmp_path: Path) -> None:
    """token_sha256 and token_file authenticate like an inline token."""
    hashed, from_file = "hashed-token-0123456789", "file-token-0123456789"
    secret = tmp_path / "token"
    secret.write_text(from_file + "\n")
    client = await make_client(api={"tokens": [
        {"name": "h", "token_sha256": hashlib.sha256(hashed.encode()).hexdigest(),
         "scopes": ["read"]},
        {"name": "f", "token_file": str(secret), "scopes": ["read"]}]})
    for token in (hashed, from_file):
        assert (await client.get("/api/v1/incidents", headers=_bearer(token))).status == 200
    assert (await client.get("/api/v1/incidents",
                             headers=_bearer(hashlib.sha256(hashed.encode()).hexdigest()))
            ).status == 401


async def test_undecodable_bearer_is_401_not_500(make_client: ClientFactory) -> None:
    """A token of non-UTF-8 bytes is refused as invalid, on the API and the webhook."""
    client = await make_client(**_config())
    for method, path in (("GET", "/api/v1/incidents"), ("POST", "/webhook/alertmanager")):
        response = await client.request(method, path, data=b"{}", headers={
            "Authorization": b"Bearer \xff\xfe".decode("latin-1")})
        assert response.status == 401, (path, await response.text())


def test_open_api_and_unreadable_api_are_warned_about() -> None:
    """At start: a warning for an open API, and one when no token can read."""
    [open_warning] = auth_warnings(ServiceConfig())
    assert "unauthenticated" in open_warning
    ingest_only = ServiceConfig.model_validate({"webhook": {"bearer_token": WEBHOOK_TOKEN}})
    [closed] = auth_warnings(ingest_only)
    assert "/metrics" in closed and "scope 'read'" in closed
    assert auth_warnings(ServiceConfig.model_validate(_config())) == []
