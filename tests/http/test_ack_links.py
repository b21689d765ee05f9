"""GET /ack/{token} shows a page and acknowledges nothing; POST acknowledges, once.

Over a real TCP socket and a real SQLite store (the incident the page shows is made by
the intake processor from a webhook), with an in-test acknowledger recording its calls.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from router.acks import AckBy, AckResult, sign_token, verify_token
from router.app import build_ack_links, create_app
from router.clock import FakeClock
from router.config import ServiceConfig
from router.errors import StoreUnavailable
from router.http import STORE, ServiceState
from router.http.state import ACK_LINKS, ACKNOWLEDGER, PROCESSOR
from router.rules import load_rules
from router.store.base import IncidentDetail

from .ackfake import RecordingAcknowledger
from .conftest import metric

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests/fixtures/alertmanager/02-firing-grouped-3.json"
NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
KEY = "k" * 40
PUBLIC = "https://tocsin.example.com"

AckClient = Callable[..., Awaitable[tuple[TestClient[Any, Any], RecordingAcknowledger]]]


@pytest.fixture
async def ack_client(tmp_path: Path) -> AsyncIterator[AckClient]:
    """An app with links on (unless ``links=False``) and a recording acknowledger."""
    clients: list[TestClient[Any, Any]] = []
    rules = load_rules([REPO / "rules"])

    async def factory(*, links: bool = True, acknowledger: bool = True,
                      clock: FakeClock | None = None,
                      ) -> tuple[TestClient[Any, Any], RecordingAcknowledger]:
        data: dict[str, Any] = {"state_url": f"sqlite:///{tmp_path / f'{len(clients)}.db'}"}
        if links:
            data["acks"] = {"link_key": KEY, "public_url": PUBLIC, "link_ttl": "1h"}
        app = create_app(ServiceConfig.model_validate(data), rules=rules,
                         state=ServiceState(), clock=clock or FakeClock(NOW),
                         run_workers=False)
        fake = RecordingAcknowledger()
        if acknowledger:
            app[ACKNOWLEDGER] = fake
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, fake

    yield factory
    for client in clients:
        await client.close()


async def _incident(client: TestClient[Any, Any]) -> str:
    """Post a webhook, route it: the id of the incident it opened."""
    response = await client.post("/webhook/alertmanager", data=FIXTURE.read_bytes(),
                                 headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert await client.app[PROCESSOR].process_once() > 0
    [incident] = await client.app[STORE].list_incidents(
        state=None, route=None, audience=None, limit=10, offset=0)
    return str(incident.id)


def _path(client: TestClient[Any, Any], incident_id: str, contact_id: str,
          now: datetime = NOW) -> str:
    url = client.app[ACK_LINKS].url(incident_id, contact_id, now)
    assert url.startswith(PUBLIC + "/ack/")
    return str(url.removeprefix(PUBLIC))


def _assert_page_headers(headers: Any) -> None:
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp


async def test_get_shows_the_page_and_acknowledges_nothing(ack_client: AckClient) -> None:
    """GET: title, severity, contact and a form POSTing to the same URL; no acknowledge."""
    client, fake = await ack_client()
    incident_id = await _incident(client)
    fake.states[incident_id] = "open"
    path = _path(client, incident_id, "ops")
    before = metric("tocsin_ack_link_requests_total", result="shown")
    for _ in range(3):  # a scanner, a preview, the person
        response = await client.get(path)
        assert response.status == 200
    page = await response.text()
    _assert_page_headers(response.headers)
    assert "HostDown" in page and "critical" in page and "Ops on call" in page
    # No action: the form POSTs to the URL the browser shows (a proxy prefix kept).
    assert re.search(r'<form method="post"><button type="submit">Acknowledge</button>', page)
    assert "<script" not in page and "http://" not in page.split("</style>")[1]
    assert fake.calls == []
    assert metric("tocsin_ack_link_requests_total", result="shown") == before + 3


async def test_post_acknowledges_once_then_says_already(ack_client: AckClient) -> None:
    """POST: one acknowledge call as the contact, channel link; the second says who did."""
    client, fake = await ack_client()
    incident_id = await _incident(client)
    fake.states[incident_id] = "open"
    first = await client.post(_path(client, incident_id, "ops"))
    assert first.status == 200
    _assert_page_headers(first.headers)
    assert "Acknowledged" in await first.text()
    [(acked, by, channel, at)] = fake.calls
    assert (acked, by.name, by.contact_id, channel, at) == (
        incident_id, "Ops on call", "ops", "link", NOW)
    second = await client.post(_path(client, incident_id, "astreinte-fr"))
    assert second.status == 200
    page = await second.text()
    assert '<html lang="fr">' in page  # the contact's locale
    assert "Déjà pris en charge" in page
    assert "Ops on call a pris en charge cet incident à 2026-11-29 07:00 CET" in page
    assert len(fake.calls) == 2


@pytest.mark.parametrize(("state", "status", "words"), [
    ("resolved", 409, "Incident resolved"),
    ("not_asked", 409, "No answer needed"),
    (None, 404, "Incident not found"),
])
async def test_post_outcomes(ack_client: AckClient, state: str | None, status: int,
                             words: str) -> None:
    """Resolved, not asked and unknown incidents get their own page and status."""
    client, fake = await ack_client()
    if state is not None:
        fake.states["inc-1"] = state
    response = await client.post(_path(client, "inc-1", "ops"))
    assert response.status == status
    assert words in await response.text()


async def test_values_are_escaped(ack_client: AckClient) -> None:
    """A contact id with markup (unknown to the rules) is shown escaped."""
    client, fake = await ack_client()
    fake.states["inc-1"] = "open"
    fake.done["inc-1"] = AckResult("acknowledged", "inc-1", AckBy("<b>Mallory</b>"), NOW, "api")
    page = await (await client.post(_path(client, "inc-1", "<i>x</i>"))).text()
    assert "&lt;b&gt;Mallory&lt;/b&gt;" in page and "<b>Mallory" not in page
    assert fake.calls[0][1].name == "<i>x</i>"  # unknown contact: its id as the name


async def test_expired_forged_and_malformed_tokens_are_refused(ack_client: AckClient) -> None:
    """410 expired, 403 forged, 400 malformed: an HTML page, no acknowledge call."""
    clock = FakeClock(NOW)
    client, fake = await ack_client(clock=clock)
    fake.states["inc-1"] = "open"
    path = _path(client, "inc-1", "ops")
    forged = "/ack/" + sign_token(b"another key of forty characters.........", "inc-1", "ops",
                                  NOW + timedelta(hours=1))
    payload, _, signature = path.removeprefix("/ack/").partition(".")
    tampered = f"/ack/{payload[:-2]}AA.{signature}"
    clock.advance(3601)
    for method in ("GET", "POST"):
        for target, status, words in ((path, 410, "Link expired"),
                                      (forged, 403, "Invalid link"),
                                      (tampered, 403, "Invalid link"),
                                      ("/ack/not-a-token", 400, "Invalid link"),
                                      ("/ack/" + "x" * 5000, 400, "Invalid link")):
            response = await client.request(method, target)
            assert response.status == status, (method, target)
            _assert_page_headers(response.headers)
            assert words in await response.text()
    assert fake.calls == []
    french = await client.get(path, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "Lien expiré" in await french.text()


async def test_links_disabled_is_a_404_page(ack_client: AckClient) -> None:
    """Without acks.link_key: 404 saying links are off, for GET and POST."""
    client, fake = await ack_client(links=False)
    assert ACK_LINKS not in client.app
    token = sign_token(KEY.encode(), "inc-1", "ops", NOW + timedelta(hours=1))
    before = metric("tocsin_ack_link_requests_total", result="disabled")
    for method in ("GET", "POST"):
        response = await client.request(method, f"/ack/{token}")
        assert response.status == 404
        assert "acks.link_key" in await response.text()
    assert fake.calls == []
    assert metric("tocsin_ack_link_requests_total", result="disabled") == before + 2


async def test_the_service_acknowledger_answers_an_unknown_incident(
        ack_client: AckClient) -> None:
    """Without a recording acknowledger the app's own service answers: not found."""
    client, _ = await ack_client(acknowledger=False)
    response = await client.post(_path(client, "inc-1", "ops"))
    assert response.status == 404


async def test_get_of_a_resolved_or_unknown_incident_has_no_button(
    ack_client: AckClient,
) -> None:
    """GET on an incident the store does not know: 404 page, no form."""
    client, _ = await ack_client()
    response = await client.get(_path(client, "inc-gone", "ops"))
    assert response.status == 404
    page = await response.text()
    assert "Incident not found" in page and "<form" not in page


def test_links_are_built_from_the_acks_section() -> None:
    """acks.public_url and acks.link_ttl make the links; no key, no links."""
    assert build_ack_links(ServiceConfig()) is None
    links = build_ack_links(ServiceConfig.model_validate(
        {"acks": {"link_key": KEY, "public_url": PUBLIC + "/tocsin/", "link_ttl": "30m"}}))
    assert links is not None
    url = links.url("inc-1", "ops", NOW)
    assert url.startswith(PUBLIC + "/tocsin/ack/")
    grant = verify_token(KEY.encode(), url.rsplit("/", 1)[1], NOW)
    assert grant.expires_at == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(("error", "status"), [
    (StoreUnavailable("disk full"), 503), (RuntimeError("a bug"), 500)])
async def test_a_failing_acknowledger_is_an_html_page_and_the_token_is_not_logged(
    ack_client: AckClient, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int,
) -> None:
    """The store down: 503 "try again"; a bug: 500, same page; neither log holds the token."""
    client, fake = await ack_client()

    async def failing(*args: Any, **kwargs: Any) -> AckResult:
        raise error

    monkeypatch.setattr(fake, "acknowledge", failing)
    path = _path(client, "inc-1", "ops")
    with capture_logs() as logs:
        response = await client.post(path)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Try again shortly" in await response.text()
    assert logs and path.removeprefix("/ack/") not in repr(logs)


async def test_get_of_a_resolved_incident_says_so_without_a_button(
    ack_client: AckClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolved incident (as the store reads it): the page says so, offers no button."""
    client, fake = await ack_client()
    incident_id = await _incident(client)
    store = client.app[STORE]
    detail = await store.get_incident(incident_id)
    assert detail is not None
    resolved = dataclasses.replace(detail, summary=dataclasses.replace(
        detail.summary, state="resolved", resolved_at=NOW))

    async def get_incident(wanted: str) -> IncidentDetail | None:
        return resolved if wanted == incident_id else None

    monkeypatch.setattr(store, "get_incident", get_incident)
    response = await client.get(_path(client, incident_id, "ops"))
    assert response.status == 200
    page = await response.text()
    assert "Incident resolved" in page and "HostDown" in page and "<form" not in page
    assert fake.calls == []
