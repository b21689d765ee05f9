"""``/api/v1/push/subscriptions``: authenticated register, list and delete over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy.local.push_service import PushService
from router.app import create_app
from router.config import ServiceConfig
from router.http import ServiceState
from router.http.state import STORE
from router.push_keys import generate_vapid_keys
from router.rules import load_rules

REPO = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    config = ServiceConfig.model_validate({
        "state_url": f"sqlite:///{tmp_path / 'tocsin.db'}",
        "webpush": {"vapid_private_key": generate_vapid_keys()[0],
                    "vapid_subject": "mailto:ops@example.com", "api_token": TOKEN,
                    # push.example.net does not resolve offline: allowlisted, not looked up
                    "allowed_endpoints": ["https://push.example.net/"]},
    })
    app = create_app(config, rules=load_rules([REPO / "rules"]), state=ServiceState(),
                     run_workers=False)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def browser_subscription() -> dict[str, Any]:
    return PushService(origin="https://push.example.net").subscribe()


async def test_register_list_delete(client: TestClient[Any, Any]) -> None:
    """A subscription is created (201), re-registered (200), listed, then deleted (204)."""
    sub = browser_subscription()
    body = {"contact_id": "ops", "subscription": sub}
    created = await client.post("/api/v1/push/subscriptions", json=body, headers=AUTH)
    assert created.status == 201
    data = await created.json()
    assert data["contact_id"] == "ops"
    assert data["endpoint_origin"] == "https://push.example.net"
    again = await client.post("/api/v1/push/subscriptions", json=body, headers=AUTH)
    assert again.status == 200
    listed = await (await client.get("/api/v1/push/subscriptions?contact_id=ops",
                                     headers=AUTH)).json()
    assert [s["id"] for s in listed] == [data["id"]]
    assert "/push/" not in str(listed)  # the capability URL is not exposed
    deleted = await client.delete(f"/api/v1/push/subscriptions/{data['id']}", headers=AUTH)
    assert deleted.status == 204
    gone = await client.delete(f"/api/v1/push/subscriptions/{data['id']}", headers=AUTH)
    assert gone.status == 404


async def test_one_browser_for_two_contacts_keeps_both(client: TestClient[Any, Any]) -> None:
    """A shared browser registered for a second contact stays the first contact's too."""
    sub = browser_subscription()
    first = await client.post("/api/v1/push/subscriptions", headers=AUTH,
                              json={"contact_id": "ops", "subscription": sub})
    second = await client.post("/api/v1/push/subscriptions", headers=AUTH,
                               json={"contact_id": "astreinte-fr", "subscription": sub})
    assert (first.status, second.status) == (201, 201)
    for contact in ("ops", "astreinte-fr"):
        listed = await (await client.get(f"/api/v1/push/subscriptions?contact_id={contact}",
                                         headers=AUTH)).json()
        assert [s["contact_id"] for s in listed] == [contact]
    # The browser re-subscribes (new keys): both contacts' rows take them, none is added.
    renewed = {**sub, "keys": browser_subscription()["keys"]}
    again = await client.post("/api/v1/push/subscriptions", headers=AUTH,
                              json={"contact_id": "astreinte-fr", "subscription": renewed})
    assert again.status == 200
    store = client.server.app[STORE]
    rows = await store.push_subscriptions(None)
    assert sorted(r.contact_id for r in rows) == ["astreinte-fr", "ops"]
    assert {r.auth for r in rows} == {renewed["keys"]["auth"]}
    # The push service says the browser is gone: it is gone for both contacts.
    assert await store.delete_push_endpoint(sub["endpoint"])
    assert await store.push_subscriptions(None) == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-xxxxxxx"},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_token_required(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    """Without the configured bearer token every endpoint answers 401."""
    for method, path in (("POST", ""), ("GET", ""), ("DELETE", "/1")):
        resp = await client.request(method, f"/api/v1/push/subscriptions{path}",
                                    headers=headers, json={})
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("body", "location"), [
    ({"contact_id": "nobody", "subscription": None}, "contact_id"),
    ({"contact_id": "ops", "subscription": {"endpoint": "ftp://x"}}, "subscription"),
    ({"contact_id": "ops", "subscription": {"endpoint": "https://p.example/x",
                                             "keys": {"p256dh": "short", "auth": "x"}}},
     "subscription"),
])
async def test_bad_bodies(client: TestClient[Any, Any], body: dict[str, Any],
                          location: str) -> None:
    """Unknown contacts and malformed PushSubscription JSON are 400 with a location."""
    resp = await client.post("/api/v1/push/subscriptions", json=body, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["location"] == location


@pytest.mark.parametrize(("endpoint", "why"), [
    ("http://127.0.0.1:9/push/x", "must use https"),
    ("https://127.0.0.1:9/push/x", "not a public address"),
    ("https://localhost:9/push/x", "not a public address"),
    ("https://169.254.169.254/latest/meta-data/", "not a public address"),
    ("http://push.example.net/push/x", "must use https"),  # allowlisted as https only
])
async def test_private_or_plain_http_endpoint_is_refused(
    client: TestClient[Any, Any], endpoint: str, why: str,
) -> None:
    """Registering a loopback/metadata/plain-http endpoint is a 400 and stores nothing."""
    sub = {**browser_subscription(), "endpoint": endpoint}
    resp = await client.post("/api/v1/push/subscriptions",
                             json={"contact_id": "ops", "subscription": sub}, headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert body["location"] == "subscription.endpoint"
    assert why in body["error"]
    listed = await client.get("/api/v1/push/subscriptions", headers=AUTH)
    assert await listed.json() == []
