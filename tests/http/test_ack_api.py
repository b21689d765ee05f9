"""POST /api/v1/incidents/{id}/ack and `tocsin incidents ack` against a running server."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.cli import main
from router.cli.incidents import ack_command, service_url
from router.clock import FakeClock
from router.config import ServiceConfig, load_config
from router.errors import StoreUnavailable
from router.http import ServiceState
from router.http.state import ACKNOWLEDGER
from router.rules import load_rules

from .ackfake import RecordingAcknowledger

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
TOKENS = {"read": "read-token-0123456789abcdef", "operate": "operate-token-0123456789ab"}
PATH = "/api/v1/incidents/inc-1/ack"

ApiClient = Callable[..., Awaitable[tuple[TestClient[Any, Any], RecordingAcknowledger]]]


@pytest.fixture
async def api_client(tmp_path: Path) -> AsyncIterator[ApiClient]:
    """An app with read and operate tokens (``tokens=False``: open) and a fake acknowledger."""
    clients: list[TestClient[Any, Any]] = []
    rules = load_rules([REPO / "rules"])

    async def factory(*, tokens: bool = True, acknowledger: bool = True,
                      ) -> tuple[TestClient[Any, Any], RecordingAcknowledger]:
        data: dict[str, Any] = {"state_url": f"sqlite:///{tmp_path / f'{len(clients)}.db'}"}
        if tokens:
            data["api"] = {"tokens": [{"name": f"{s}-client", "token": t, "scopes": [s]}
                                      for s, t in TOKENS.items()]}
        app = create_app(ServiceConfig.model_validate(data), rules=rules,
                         state=ServiceState(), clock=FakeClock(NOW), run_workers=False)
        fake = RecordingAcknowledger(states={"inc-1": "open", "inc-done": "resolved",
                                             "inc-quiet": "not_asked"})
        if acknowledger:
            app[ACKNOWLEDGER] = fake
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, fake

    yield factory
    for client in clients:
        await client.close()


def _auth(scope: str = "operate") -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


async def test_acknowledge_then_already(api_client: ApiClient) -> None:
    """200 acknowledged with who/when/channel; again: 200 already, naming the first."""
    client, fake = await api_client()
    first = await client.post(PATH, json={"by": "Alice", "comment": "on it"},
                              headers=_auth())
    assert first.status == 200
    assert await first.json() == {
        "result": "acknowledged", "incident_id": "inc-1",
        "acknowledged_by": {"name": "Alice", "contact_id": None},
        "acknowledged_at": "2026-11-29T06:00:00Z", "ack_channel": "api",
        "message": "incident inc-1 acknowledged", "comment": "on it"}
    [(incident_id, by, channel, at)] = fake.calls
    assert (incident_id, by.name, by.contact_id, channel, at) == ("inc-1", "Alice", None,
                                                                  "api", NOW)
    again = await client.post(PATH, json={"by": "Bob"}, headers=_auth())
    assert again.status == 200
    body = await again.json()
    assert body["result"] == "already"
    assert body["acknowledged_by"]["name"] == "Alice"
    assert "already acknowledged by Alice at 2026-11-29T06:00:00Z" in body["message"]


@pytest.mark.parametrize(("incident_id", "status", "result"), [
    ("inc-done", 409, "resolved"), ("inc-quiet", 409, "not_asked"),
    ("inc-none", 404, "not_found")])
async def test_outcomes_that_acknowledge_nothing(api_client: ApiClient, incident_id: str,
                                                 status: int, result: str) -> None:
    """409 resolved / not asked, 404 unknown; JSON error bodies with the result."""
    client, _ = await api_client()
    response = await client.post(f"/api/v1/incidents/{incident_id}/ack",
                                 json={"by": "Alice"}, headers=_auth())
    assert response.status == status
    body = await response.json()
    assert (body["status"], body["result"]) == ("error", result)
    assert body["error"] == body["message"]


async def test_authentication_and_scope(api_client: ApiClient) -> None:
    """No token: 401 with a challenge; a read token: 403 naming 'operate'; nothing acked."""
    client, fake = await api_client()
    missing = await client.post(PATH, json={"by": "Alice"})
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post(PATH, json={"by": "Alice"}, headers=_auth("read"))
    assert wrong.status == 403
    assert "needs scope 'operate'" in (await wrong.json())["error"]
    assert fake.calls == []


@pytest.mark.parametrize(("body", "status", "location"), [
    (b"", 400, None), (b"not json", 400, None), (b"[1]", 400, None),
    (b"{}", 400, "body.by"), (b'{"by": ""}', 400, "body.by"), (b'{"by": 7}', 400, "body.by"),
    (json.dumps({"by": "x" * 201}).encode(), 400, "body.by"),
    (b'{"by": "A", "comment": 3}', 400, "body.comment"),
    (json.dumps({"by": "A", "comment": "c" * 501}).encode(), 400, "body.comment"),
    (b'{"by": "A", "channel": "sms"}', 400, "body.channel"),
    (b'{"by": "A", "bye": 1}', 400, "body.bye"),
    (json.dumps({"by": "A", "comment": "c" * 20_000}).encode(), 413, None),
])
async def test_body_validation(api_client: ApiClient, body: bytes, status: int,
                               location: str | None) -> None:
    """A bad body is a 4xx JSON error (with location for a bad field); nothing acked."""
    client, fake = await api_client()
    response = await client.post(PATH, data=body, headers={
        **_auth(), "Content-Type": "application/json"})
    assert response.status == status
    answer = await response.json()
    assert answer["status"] == "error"
    assert answer.get("location") == location
    assert fake.calls == []


async def test_the_service_acknowledger_answers_an_unknown_incident_404(
        api_client: ApiClient) -> None:
    """Without a recording acknowledger the app's own service answers (store lookup)."""
    client, _ = await api_client(acknowledger=False)
    response = await client.post(PATH, json={"by": "Alice"}, headers=_auth())
    assert response.status == 404
    assert (await response.json())["result"] == "not_found"


def _base(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_cli_acknowledges_through_the_running_service(
    api_client: ApiClient, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tocsin incidents ack ID --by NAME --url` with TOCSIN_API_TOKEN: exit 0, channel cli."""
    client, fake = await api_client()
    monkeypatch.setenv("TOCSIN_API_TOKEN", TOKENS["operate"])
    code = await asyncio.to_thread(main, ["incidents", "ack", "inc-1", "--by", "Alice",
                                          "--comment", "looking", "--url", _base(client)])
    assert code == 0
    # (the service's own log lines share stdout in this process)
    assert capsys.readouterr().out.endswith("\nincident inc-1 acknowledged by Alice\n")
    [(_, by, channel, _)] = fake.calls
    assert (by.name, channel) == ("Alice", "cli")
    code = await asyncio.to_thread(main, ["incidents", "ack", "inc-1", "--by", "Bob",
                                          "--url", _base(client)])
    assert code == 0
    assert "already acknowledged by Alice" in capsys.readouterr().out


async def test_cli_failures(api_client: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 1: unknown or resolved incident, no token, wrong token, unreachable service."""
    client, fake = await api_client()
    monkeypatch.delenv("TOCSIN_API_TOKEN", raising=False)

    async def run(incident_id: str, token: str | None, url: str) -> tuple[int, str]:
        err = io.StringIO()
        code = await asyncio.to_thread(ack_command, url, incident_id, by="Alice",
                                       comment=None, token=token, timeout_s=5,
                                       out=io.StringIO(), err=err)
        return code, err.getvalue()

    base = _base(client)
    code, err = await run("inc-none", TOKENS["operate"], base)
    assert (code, err) == (1, "tocsin incidents ack: no incident 'inc-none'\n")
    code, err = await run("inc-done", TOKENS["operate"], base)
    assert code == 1 and "resolved" in err
    code, err = await run("inc-1", None, base)
    assert code == 1 and "missing credentials" in err and "TOCSIN_API_TOKEN" in err
    code, err = await run("inc-1", TOKENS["read"], base)
    assert code == 1 and "needs scope 'operate'" in err
    closed = TestServer(create_app(ServiceConfig(), rules=load_rules([REPO / "rules"]),
                                   run_workers=False), host="127.0.0.1")
    await closed.start_server()
    gone = str(closed.make_url("/")).rstrip("/")
    await closed.close()
    code, err = await run("inc-1", None, gone)
    assert code == 1 and f"cannot reach Tocsin at {gone}" in err
    assert [c[0] for c in fake.calls] == ["inc-none", "inc-done"]


def test_cli_default_url_is_the_listen_address() -> None:
    """--url defaults to the config's listen; a wildcard host is read as the loopback."""
    assert service_url(ServiceConfig()) == "http://127.0.0.1:9095"
    assert service_url(load_config(None, {"TOCSIN_LISTEN": "0.0.0.0:8080"})) == (
        "http://127.0.0.1:8080")
    assert service_url(load_config(None, {"TOCSIN_LISTEN": "[::]:8080"})) == "http://[::1]:8080"
    assert service_url(load_config(None, {"TOCSIN_LISTEN": "[::1]:80"})) == "http://[::1]:80"


def test_cli_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """--by is required; help shows an example; a non-http --url is a usage error."""
    assert main(["incidents", "ack", "inc-1"]) == 2
    assert main(["incidents"]) == 2
    assert main(["incidents", "ack", "--help"]) == 0
    assert "example" in capsys.readouterr().out
    assert main(["incidents", "ack", "inc-1", "--by", "A", "--url", "ftp://x"]) == 2


async def test_store_down_is_503_with_retry_after(api_client: ApiClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The acknowledger's store not answering: 503 + Retry-After, not a 500."""
    client, fake = await api_client()

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(fake, "acknowledge", failing)
    response = await client.post(PATH, json={"by": "Alice"}, headers=_auth())
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert "nothing was acknowledged" in (await response.json())["error"]


async def test_by_a_contact_id_is_that_contact(api_client: ApiClient) -> None:
    """`by` naming a contact id of the rules acknowledges as that contact, by its name."""
    client, fake = await api_client()
    response = await client.post(PATH, json={"by": "astreinte-fr"}, headers=_auth())
    assert response.status == 200
    assert (await response.json())["acknowledged_by"] == {"name": "Astreinte France",
                                                          "contact_id": "astreinte-fr"}
    assert fake.calls[0][1].contact_id == "astreinte-fr"
