"""``GET /api/v1/audiences[/{name}]``: counts per channel, sources, members masked and
paginated; the ``tocsin_contacts`` gauges follow a rule reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.config import ServiceConfig
from router.http.state import RULES, ServiceState
from router.models import Contact
from router.rules import load_rules
from router.rules.ruleset import Audience, ContactSourceReport

from .conftest import metric

ROUTES = """\
audiences:
  ops:
    description: On call
    contacts:
      - {id: ops, name: Ops On Call, email: ops@example.com}
  customers:
    contacts:
{customers}
route:
  audiences: [ops]
  template: default
  channels: {default: [email]}
"""
TEMPLATES = """\
templates:
  default:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "x"}
    sms:
      en: {text: "x"}
"""


def customers(n: int) -> str:
    """``n`` customers: even ones with e-mail and phone, odd ones with a phone only, and an
    SNS topic."""
    lines = []
    for i in range(n):
        email = f", email: customer{i}@example.org" if i % 2 == 0 else ""
        lines.append(f"      - {{id: c{i}, name: Customer Number{i}{email},"
                     f" phone: '+336123456{i:02d}'}}")
    lines.append("      - {id: status, name: Status Page,"
                 " topic: 'arn:aws:sns:eu-west-1:123456789012:status'}")
    return "\n".join(lines)


def write_rules(folder: Path, n: int) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "routes.yaml").write_text(ROUTES.replace("{customers}", customers(n)))
    (folder / "templates.yaml").write_text(TEMPLATES)


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """An app on a rule set of 30 customers, reloadable from ``tmp_path/rules``."""
    folder = tmp_path / "rules"
    write_rules(folder, 30)
    config = ServiceConfig.model_validate({
        "state_url": f"sqlite:///{tmp_path / 'state.db'}", "rules": [str(folder)],
        "rules_poll_interval_s": 0})
    app = create_app(config, rules=load_rules([folder]), state=ServiceState(),
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_the_list_counts_members_per_channel(app_client: TestClient[Any, Any]) -> None:
    """Members, reachable per channel, unreachable; the time the rules were loaded."""
    response = await app_client.get("/api/v1/audiences")
    assert response.status == 200
    body = await response.json()
    assert body["rules_loaded_at"].endswith("Z")
    by_name = {a["name"]: a for a in body["audiences"]}
    assert list(by_name) == ["customers", "ops"]
    assert by_name["customers"] == {
        "name": "customers", "description": None, "members": 31,
        "reachable": {"email": 15, "sms": 30, "topic": 1}, "unreachable": 0, "sources": []}
    assert by_name["ops"]["reachable"] == {"email": 1, "sms": 0, "topic": 0}
    assert "example.org" not in await response.text()


async def test_members_are_masked_paginated_and_filtered(
    app_client: TestClient[Any, Any],
) -> None:
    """Initials, masked e-mail and phone; limit/offset in file order; channel filter."""
    response = await app_client.get("/api/v1/audiences/customers?limit=2&offset=0")
    body = await response.json()
    assert body["page"] == {"limit": 2, "offset": 0, "channel": None, "total": 31}
    assert body["contacts"][0] == {
        "id": "c0", "name": "C. N.", "email": "c***@e***.org", "phone": "+336******00",
        "topic": None, "locale": "en", "timezone": "UTC", "channels": ["email", "sms"]}
    assert [c["id"] for c in body["contacts"]] == ["c0", "c1"]
    text = await response.text()
    assert "customer0@" not in text and "+33612345600" not in text and "Number" not in text
    page = await (await app_client.get(
        "/api/v1/audiences/customers?channel=email&limit=5&offset=5")).json()
    assert page["page"]["total"] == 15
    assert [c["id"] for c in page["contacts"]] == ["c10", "c12", "c14", "c16", "c18"]
    topic = await (await app_client.get("/api/v1/audiences/customers?channel=topic")).json()
    assert topic["contacts"] == [{
        "id": "status", "name": "S. P.", "email": None, "phone": None,
        "topic": "arn:aws:sns:eu-west-1:123456789012:status", "locale": "en",
        "timezone": "UTC", "channels": ["topic"]}]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "channel=fax",
                                   "limit=x"])
async def test_bad_pages_are_400(app_client: TestClient[Any, Any], query: str) -> None:
    """Bounds of limit/offset, known channels only: a JSON 400 naming the parameter."""
    response = await app_client.get(f"/api/v1/audiences/customers?{query}")
    assert response.status == 400
    assert (await response.json())["status"] == "error"


async def test_an_unknown_audience_is_a_json_404(app_client: TestClient[Any, Any]) -> None:
    response = await app_client.get("/api/v1/audiences/nope")
    assert response.status == 404
    assert (await response.json())["error"] == "no audience 'nope'"


async def test_sources_are_reported(app_client: TestClient[Any, Any]) -> None:
    """Each contact source of an audience: its load, counts and (masked) problems; a
    member left with no valid address is counted unreachable (``channel=none``)."""
    rules = app_client.app[RULES].current
    assert rules is not None
    report = ContactSourceReport(
        path="contacts/customers.csv", loaded_at=datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
        rows=3, valid=2, invalid=1, duplicates=0, reachable=(("email", 2), ("sms", 1)),
        problems=("contacts/customers.csv:4: phone: invalid number for region FR",))
    rules.audiences = {**rules.audiences, "csv": Audience(
        name="csv", contacts=(Contact(id="a", name="A B", email="a@example.org"),
                              Contact(id="b", name="Bad Phone")),
        sources=(report,))}
    body = await (await app_client.get("/api/v1/audiences/csv")).json()
    assert body["unreachable"] == 1
    none = await (await app_client.get("/api/v1/audiences/csv?channel=none")).json()
    assert [c["id"] for c in none["contacts"]] == ["b"]
    assert body["sources"] == [{
        "path": "contacts/customers.csv", "loaded_at": "2026-12-01T08:00:00Z", "rows": 3,
        "valid": 2, "invalid": 1, "duplicates": 0, "reachable": {"email": 2, "sms": 1},
        "problems_total": 1,
        "problems": ["contacts/customers.csv:4: phone: invalid number for region FR"]}]


async def test_contact_gauges_are_set_at_start_and_after_a_reload(
    app_client: TestClient[Any, Any], tmp_path: Path,
) -> None:
    """``tocsin_contacts{audience,channel}``: the start's counts, then the reloaded ones."""
    assert metric("tocsin_contacts", audience="customers", channel="sms") == 30
    assert metric("tocsin_contacts", audience="customers", channel="email") == 15
    before = app_client.app[RULES].loaded_at
    write_rules(tmp_path / "rules", 40)
    response = await app_client.post("/-/reload")
    assert response.status == 200, await response.text()
    assert metric("tocsin_contacts", audience="customers", channel="sms") == 40
    assert metric("tocsin_contacts", audience="customers", channel="email") == 20
    assert metric("tocsin_contacts", audience="ops", channel="email") == 1
    assert app_client.app[RULES].loaded_at is not None and before is not None
    assert app_client.app[RULES].loaded_at >= before

