"""POST /webhook/sns end to end on a real socket: SNS messages signed with a local key,
the certificate and the SubscribeURL served by a real HTTP server on 127.0.0.1, the real
app and its SQLite store; the Acknowledger records what it is asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.clock import FakeClock
from router.config import ServiceConfig
from router.http import ServiceState
from router.http.state import ACKNOWLEDGER
from router.rules import load_rules
from tests.acks.sns_peer import (
    T0,
    TOPIC,
    RecordingAcknowledger,
    SnsPeer,
    body,
    pending,
    sns_peer_fixture,  # noqa: F401 — the sns_peer fixture
)
from tests.http.conftest import REPO, metric

PHONE = "+33612345678"
DB = pending("inc-db", "4821", "DB down", minute=1)
DISK = pending("inc-disk", "1234", "Disk full", minute=2)

App = Callable[..., Awaitable[tuple[TestClient[Any, Any], RecordingAcknowledger, FakeClock]]]


@pytest.fixture
async def sns_app(tmp_path: Path, sns_peer: SnsPeer) -> AsyncIterator[App]:
    """The app with sns.inbound trusting the local certificate server."""
    clients: list[TestClient[Any, Any]] = []
    rules = load_rules([REPO / "rules"])

    async def factory(**inbound: Any) -> tuple[TestClient[Any, Any], RecordingAcknowledger,
                                               FakeClock]:
        config = ServiceConfig.model_validate({
            "state_url": f"sqlite:///{tmp_path / f'state{len(clients)}' / 'tocsin.db'}",
            "sns": {"inbound": {"enabled": True, "topic_arns": [TOPIC],
                                "cert_url_pattern": sns_peer.pattern,
                                "subscribe_url_pattern": sns_peer.pattern, **inbound}}})
        clock = FakeClock(T0)
        app = create_app(config, rules=rules, state=ServiceState(), clock=clock,
                         run_workers=False)
        acks = RecordingAcknowledger(pending={PHONE: [DB]})
        app[ACKNOWLEDGER] = acks
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client, acks, clock

    yield factory
    for client in clients:
        await client.close()


async def _post(client: TestClient[Any, Any], message: dict[str, str],
                header: str | None = None) -> tuple[int, dict[str, Any]]:
    response = await client.post("/webhook/sns", data=body(message), headers={
        "x-amz-sns-message-type": header or message["Type"],
        "Content-Type": "text/plain; charset=UTF-8"})
    return response.status, orjson.loads(await response.read())


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_oui_acknowledges_the_pending_incident(
        sns_app: App, sns_peer: SnsPeer, version: str) -> None:
    """The whole path: verified, new, one pending → acknowledged by the contact, by SMS,
    and the person is told."""
    client, acks, _ = await sns_app()
    status, answer = await _post(client, sns_peer.notification("Oui !", version=version))
    assert status == 200, answer
    assert answer["outcome"] == "acknowledged" and answer["incidents"] == ["inc-db"]
    assert [(i, by.contact_id, by.name, ch) for i, by, ch in acks.acknowledged] == [
        ("inc-db", "alice", "Alice", "sms")]
    assert acks.replies == [(PHONE, "Pris en compte: DB down (4821)")]


async def test_certificate_fetched_once(sns_app: App, sns_peer: SnsPeer) -> None:
    """Three messages with one SigningCertURL: one download."""
    client, _, _ = await sns_app()
    for n in range(3):
        assert (await _post(client, sns_peer.notification(f"x{n}")))[0] == 200
    assert sns_peer.cert_gets == 1


async def test_tampered_body_acknowledges_nothing(sns_app: App, sns_peer: SnsPeer) -> None:
    """A reply whose Message was changed after signing: 403 bad_signature, counted."""
    client, acks, _ = await sns_app()
    message = sns_peer.notification("non")
    message["Message"] = message["Message"].replace('"non"', '"oui"')
    before = metric("tocsin_sns_inbound_total", type="Notification", result="bad_signature")
    status, answer = await _post(client, message)
    assert (status, answer["reason"], answer["status"]) == (403, "bad_signature", "error")
    assert metric("tocsin_sns_inbound_total", type="Notification",
                  result="bad_signature") == before + 1
    assert acks.acknowledged == [] and acks.replies == []


async def test_unsigned_body_is_refused(sns_app: App, sns_peer: SnsPeer) -> None:
    """No Signature at all: 400 malformed."""
    client, acks, _ = await sns_app()
    message = sns_peer.notification("oui")
    del message["Signature"]
    status, answer = await _post(client, message)
    assert (status, answer["reason"]) == (400, "malformed")
    assert acks.acknowledged == []


async def test_certificate_url_outside_the_pattern_is_not_fetched(
        sns_app: App, sns_peer: SnsPeer) -> None:
    """A SigningCertURL elsewhere (even a real server): 403, no request made to it."""
    client, acks, _ = await sns_app(cert_url_pattern=r"^https://sns\.[a-z0-9-]+\.amazonaws\.com/")
    status, answer = await _post(client, sns_peer.notification("oui"))
    assert (status, answer["reason"]) == (403, "cert_url_refused")
    assert sns_peer.cert_gets == 0 and acks.acknowledged == []


async def test_wrong_topic_is_refused(sns_app: App, sns_peer: SnsPeer) -> None:
    """A correctly signed message of another topic: 403 wrong_topic."""
    client, acks, _ = await sns_app()
    other = "arn:aws:sns:eu-west-1:123456789012:someone-else"
    status, answer = await _post(client, sns_peer.notification("oui", topic=other))
    assert (status, answer["reason"]) == (403, "wrong_topic")
    assert acks.acknowledged == []


async def test_replayed_message_id_acts_once(sns_app: App, sns_peer: SnsPeer) -> None:
    """The same MessageId again (an SNS retry, a replay): 200 duplicate, nothing more."""
    client, acks, _ = await sns_app()
    message = sns_peer.notification("oui")
    assert (await _post(client, message))[0] == 200
    status, answer = await _post(client, message)
    assert (status, answer["result"]) == (200, "duplicate")
    assert len(acks.acknowledged) == 1 and len(acks.replies) == 1


async def test_same_sms_published_twice_acts_once(sns_app: App, sns_peer: SnsPeer) -> None:
    """Two SNS messages (two MessageIds) of one inboundMessageId: the second is ignored."""
    client, acks, _ = await sns_app()
    acks.pending[PHONE] = [DB, DISK]
    for _ in range(2):
        status, _answer = await _post(client, sns_peer.notification("oui", inbound_id="in-1"))
        assert status == 200
    assert len(acks.replies) == 1  # one choices SMS, not two


async def test_old_and_future_timestamps_are_refused(sns_app: App, sns_peer: SnsPeer) -> None:
    """Older than replay_window_s, or too far ahead: 400 stale."""
    client, acks, clock = await sns_app(replay_window_s=600)
    message = sns_peer.notification("oui")
    clock.advance(601)
    status, answer = await _post(client, message)
    assert (status, answer["reason"]) == (400, "stale")
    clock.set(T0.replace(hour=13))  # the message is an hour ahead
    assert (await _post(client, message))[1]["reason"] == "stale"
    assert acks.acknowledged == []


async def test_unknown_number_acknowledges_nothing(sns_app: App, sns_peer: SnsPeer) -> None:
    """A number with nothing pending (no paged contact): 200, counted, no SMS back."""
    client, acks, _ = await sns_app()
    before = metric("tocsin_sms_replies_total", outcome="not_pending")
    status, answer = await _post(client, sns_peer.notification("oui", phone="+33698765432"))
    assert (status, answer["outcome"]) == (200, "not_pending")
    assert metric("tocsin_sms_replies_total", outcome="not_pending") == before + 1
    assert acks.acknowledged == [] and acks.replies == []
    status, answer = await _post(client, sns_peer.notification("oui", phone="12"))
    assert (status, answer["outcome"]) == (200, "unknown_number")


async def test_ambiguous_reply_gets_the_choices(sns_app: App, sns_peer: SnsPeer) -> None:
    """Two pending, no code: one SMS with both codes; then OUI 1234 takes that one."""
    client, acks, _ = await sns_app()
    acks.pending[PHONE] = [DB, DISK]
    status, answer = await _post(client, sns_peer.notification("oui"))
    assert (status, answer["outcome"]) == (200, "choices")
    assert acks.replies == [(PHONE, "Plusieurs incidents: répondez OUI 4821 (DB down) ou "
                                    "OUI 1234 (Disk full)")]
    assert acks.acknowledged == []
    await _post(client, sns_peer.notification("OUI 1234"))
    assert [i for i, _, _ in acks.acknowledged] == ["inc-disk"]


async def test_already_acknowledged_names_who(sns_app: App, sns_peer: SnsPeer) -> None:
    """Someone answered first: outcome already, and the person learns who."""
    client, acks, _ = await sns_app()
    acks.already_by["inc-db"] = "Bob"
    status, answer = await _post(client, sns_peer.notification("yes"))
    assert (status, answer["outcome"]) == (200, "already")
    assert acks.replies == [(PHONE, "Already taken by Bob: DB down (4821)")]


async def test_opt_out_is_recorded_and_not_answered(sns_app: App, sns_peer: SnsPeer) -> None:
    """STOP: record_opt_out with the phone; no SMS sent back, nothing acknowledged."""
    client, acks, _ = await sns_app()
    status, answer = await _post(client, sns_peer.notification("Arrêt"))
    assert (status, answer["outcome"]) == (200, "opted_out")
    assert acks.opt_outs == [(PHONE, "ARRET")]
    assert acks.replies == [] and acks.acknowledged == []


async def test_not_understood_gets_help_once(sns_app: App, sns_peer: SnsPeer) -> None:
    """A paged contact's unclear reply: help text once a day, then silence."""
    client, acks, _ = await sns_app()
    for text in ("peut-être", "hein ?"):
        status, answer = await _post(client, sns_peer.notification(text))
        assert (status, answer["outcome"]) == (200, "not_understood")
    assert acks.replies == [(PHONE, "Réponse non comprise. Répondez OUI 4821 pour prendre "
                                    "l'incident.")]


async def test_confirmation_gets_the_subscribe_url(sns_app: App, sns_peer: SnsPeer) -> None:
    """A signed SubscriptionConfirmation (v1 and v2): GET SubscribeURL, 200 confirmed."""
    client, _, _ = await sns_app()
    for version in ("1", "2"):
        status, answer = await _post(client, sns_peer.confirmation(version=version))
        assert (status, answer["result"]) == (200, "confirmed")
    assert sns_peer.confirm_gets == ["Action=ConfirmSubscription&Token=tok-123"] * 2


async def test_confirmation_elsewhere_is_not_followed(sns_app: App, sns_peer: SnsPeer) -> None:
    """A signed confirmation whose SubscribeURL is outside the pattern: 403, no GET."""
    client, _, _ = await sns_app()
    message = sns_peer.confirmation(subscribe_url="http://127.0.0.2:1/?Action=Confirm")
    status, answer = await _post(client, message)
    assert (status, answer["reason"]) == (403, "subscribe_url_refused")
    assert sns_peer.confirm_gets == []


async def test_tampered_confirmation_is_not_followed(sns_app: App, sns_peer: SnsPeer) -> None:
    """A SubscribeURL changed after signing: bad signature, no GET."""
    client, _, _ = await sns_app()
    message = sns_peer.confirmation()
    message["SubscribeURL"] += "&evil=1"
    status, answer = await _post(client, message)
    assert (status, answer["reason"]) == (403, "bad_signature")
    assert sns_peer.confirm_gets == []


async def test_unsubscribe_confirmation_is_logged_only(sns_app: App, sns_peer: SnsPeer) -> None:
    """UnsubscribeConfirmation: verified, 200, the SubscribeURL is not followed."""
    client, _, _ = await sns_app()
    status, answer = await _post(client, sns_peer.confirmation(kind="UnsubscribeConfirmation"))
    assert (status, answer["result"]) == (200, "unsubscribed")
    assert sns_peer.confirm_gets == []


async def test_header_must_match_the_body(sns_app: App, sns_peer: SnsPeer) -> None:
    """x-amz-sns-message-type SubscriptionConfirmation on a Notification body: 400."""
    client, acks, _ = await sns_app()
    status, answer = await _post(client, sns_peer.notification("oui"),
                                 header="SubscriptionConfirmation")
    assert (status, answer["reason"]) == (400, "type_mismatch")
    assert acks.acknowledged == []


async def test_certificate_server_down_is_a_503(sns_app: App, sns_peer: SnsPeer) -> None:
    """The certificate cannot be fetched now: 503 (SNS retries), and the retry acts."""
    client, acks, _ = await sns_app()
    message = sns_peer.notification("oui", cert_url=f"{sns_peer.base}/missing.pem")
    status, answer = await _post(client, message)
    assert (status, answer["reason"]) == (503, "certificate_unavailable")
    assert acks.acknowledged == []


async def test_failed_handling_is_retried(sns_app: App, sns_peer: SnsPeer) -> None:
    """The Acknowledger fails: 500, the ids are forgotten, SNS's retry acknowledges."""
    client, acks, _ = await sns_app()
    calls = 0
    real = acks.acknowledge

    async def flaky(incident_id: str, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await real(incident_id, **kwargs)

    acks.acknowledge = flaky  # type: ignore[method-assign]
    message = sns_peer.notification("oui")
    assert (await _post(client, message))[0] == 500
    status, answer = await _post(client, message)
    assert (status, answer["outcome"]) == (200, "acknowledged")


async def test_disabled_is_a_404(make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
                                 sns_peer: SnsPeer) -> None:
    """Without sns.inbound.enabled the route answers a JSON 404 naming the setting."""
    client = await make_client()
    status, answer = await _post(client, sns_peer.notification("oui"))
    assert status == 404 and "sns.inbound.enabled" in answer["error"]


async def test_dev_reply_plays_an_sms_reply(sns_app: App, sns_peer: SnsPeer,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin dev reply PHONE oui` posts a signed Notification the service accepts."""
    from router.cli import main
    from tests.acks.sns_peer import identity

    client, acks, clock = await sns_app()
    clock.set(datetime.now(UTC))  # the command signs with the real time
    (tmp_path / "signing-key.pem").write_bytes(identity().key_pem)
    url = str(client.make_url("")).rstrip("/")
    code = await asyncio.to_thread(main, [
        "dev", "reply", PHONE, "oui", "--url", url, "--dir", str(tmp_path),
        "--cert-url", sns_peer.cert_url, "--topic-arn", TOPIC, "--signature-version", "1"])
    assert code == 0, capsys.readouterr()
    assert [i for i, _, _ in acks.acknowledged] == ["inc-db"]
    assert '"outcome":"acknowledged"' in capsys.readouterr().out.replace(" ", "")


def test_dev_sns_identity_writes_a_matching_pair(tmp_path: Path) -> None:
    """The key and certificate written verify each other; a second run keeps them."""
    from router.acks.sns_dev import inbound_sms_message, signed_message
    from router.acks.sns_message import parse_sns_message, verify_signature
    from router.cli import main

    assert main(["dev", "sns-identity", "--dir", str(tmp_path)]) == 0
    key = (tmp_path / "signing-key.pem").read_bytes()
    now = datetime.now(UTC)
    message = signed_message(key, message_type="Notification", topic_arn=TOPIC,
                             message=inbound_sms_message(PHONE, "oui", destination="+1800"),
                             cert_url="http://x/", at=now)
    verify_signature(parse_sns_message(orjson.dumps(message)),
                     (tmp_path / "signing-cert.pem").read_bytes(), now)
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o077 == 0
    assert main(["dev", "sns-identity", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "signing-key.pem").read_bytes() == key


def test_dev_reply_without_a_key_says_how_to_make_one(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """No key: exit 1 naming `tocsin dev sns-identity`."""
    from router.cli import main

    assert main(["dev", "reply", PHONE, "oui", "--dir", str(tmp_path)]) == 1
    assert "tocsin dev sns-identity" in capsys.readouterr().err
