"""The acknowledgement loop end to end: a page asks, nobody answers, a reminder and an
escalation go out, then a signed SNS reply ("oui 4821") or a link stops it all.

Real parts on every edge that is crossed here: the store, the intake processor and the
scheduler on a fake clock (the incident side), the real ``POST /webhook/sns`` route with
signatures checked against a certificate served over HTTP on 127.0.0.1, the real
``/ack/{token}`` pages, and the service's own :class:`AckService` behind both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.acks import AckLinks, ack_code
from router.app import create_app
from router.config import ServiceConfig
from router.http import ServiceState
from router.http.state import ACKNOWLEDGER
from router.store import Store
from router.workers.acks import AckService
from tests.acks.sns_peer import (
    TOPIC,
    SnsPeer,
    body,
    sns_peer_fixture,  # noqa: F401 — the sns_peer fixture
)
from tests.incidents.harness import Harness
from tests.incidents.test_acks import fire, harness, who

LINK_KEY = "k" * 40
BOB = "+33612345602"

App = Callable[[Harness, AckService], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def service_app(tmp_path: Path, sns_peer: SnsPeer) -> AsyncIterator[App]:
    """The HTTP app of the service (SMS replies and links on), with the harness's clock
    and the harness's acknowledgement service."""
    clients: list[TestClient[Any, Any]] = []

    async def factory(h: Harness, service: AckService) -> TestClient[Any, Any]:
        config = ServiceConfig.model_validate({
            "state_url": f"sqlite:///{tmp_path / 'http' / 'tocsin.db'}",
            "acks": {"link_key": LINK_KEY, "public_url": "https://tocsin.example.com"},
            "sns": {"inbound": {"enabled": True, "topic_arns": [TOPIC],
                                "cert_url_pattern": sns_peer.pattern,
                                "subscribe_url_pattern": sns_peer.pattern}}})
        app = create_app(config, rules=h.rules, store=h.store, state=ServiceState(),
                         clock=h.clock, run_workers=False)
        app[ACKNOWLEDGER] = service
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def _reply(client: TestClient[Any, Any], peer: SnsPeer, h: Harness, text: str,
                 phone: str) -> tuple[int, dict[str, Any]]:
    message = peer.notification(text, phone=phone, at=h.clock.now())
    response = await client.post("/webhook/sns", data=body(message), headers={
        "x-amz-sns-message-type": "Notification",
        "Content-Type": "text/plain; charset=UTF-8"})
    return response.status, orjson.loads(await response.read())


async def test_nobody_answers_then_oui_with_the_code_stops_the_escalation(
        store: Store, tmp_path: Path, sns_peer: SnsPeer, service_app: App) -> None:
    """Reminder at +10m to all three, escalation at +20m to the second tier, then Bob
    answers "oui <code>" by SMS: the others are told who took it, nothing more is sent."""
    h, service = harness(store, tmp_path)
    client = await service_app(h, service)
    incident = await fire(h)
    code = ack_code(incident)
    await h.tick(600)  # reminders
    at_20m = await h.tick(600)
    assert ("escalation", "dave", "sms") in who(at_20m)

    # A reply from a number that was never paged acknowledges nothing.
    status, answer = await _reply(client, sns_peer, h, "oui", "+33699999999")
    assert status == 200 and answer["outcome"] != "acknowledged"
    assert (await store.get_incident(incident)).summary.ack is None  # type: ignore[union-attr]

    status, answer = await _reply(client, sns_peer, h, f"Oui {code} !", BOB)
    assert status == 200, answer
    assert answer["outcome"] == "acknowledged" and answer["incidents"] == [incident]

    told = await h.tick(1)
    assert {(p, c) for p, c, _ in who(told)} >= {("acknowledged", c)
                                                 for c in ("alice", "carol", "dave")}
    assert all(d.contact_id != "bob" for d in told if d.phase == "acknowledged")
    replies = await store.list_deliveries(incident=None, phase="reply")
    assert [d.recipient for d in replies] == [BOB]  # Bob is told his answer counted
    assert await h.tick(3600) == []  # no second tier, no third reminder
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is not None
    assert (detail.summary.ack.by_id, detail.summary.ack.channel) == ("bob", "sms")

    # The same SMS again (SNS retries, a new MessageId): no second acknowledgement.
    status, answer = await _reply(client, sns_peer, h, f"Oui {code} !", BOB)
    assert status == 200 and answer["outcome"] != "acknowledged"


async def test_a_link_acknowledges_on_post_only(
        store: Store, tmp_path: Path, service_app: App) -> None:
    """The e-mail's link: GET shows the page and acknowledges nothing; POST does."""
    h, service = harness(store, tmp_path)
    client = await service_app(h, service)
    incident = await fire(h)
    links = AckLinks("https://tocsin.example.com", LINK_KEY.encode(), ttl_s=3600)
    path = links.url(incident, "carol", h.clock.now()).removeprefix(
        "https://tocsin.example.com")

    page = await client.get(path)
    assert page.status == 200 and "<form" in await page.text()
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is None

    done = await client.post(path)
    assert done.status == 200
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is not None
    assert (detail.summary.ack.by_id, detail.summary.ack.channel) == ("carol", "link")
    told = await h.tick(1)
    assert {d.contact_id for d in told if d.phase == "acknowledged"} == {"alice", "bob"}
    assert await h.tick(3600) == []
