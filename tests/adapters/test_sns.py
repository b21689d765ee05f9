"""The SNS channels against moto in server mode, over HTTP (and through a fault proxy)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.sns import (
    SmsSender,
    SnsClient,
    SnsSettings,
    SnsSmsChannel,
    SnsTopicChannel,
    topic_subject,
)
from router.errors import DeliveryError
from router.models import OutboundMessage, RenderedMessage
from router.sms import SmsPolicy
from tests.adapters.sns_services import REGION, FaultProxy, MotoServer, moto_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(moto: MotoServer) -> None:
    moto.reset()


def settings(url: str, **overrides: object) -> SnsSettings:
    base: dict[str, object] = {
        "region": REGION, "endpoint_url": url, "access_key_id": "testing",
        "secret_access_key": "testing", "timeout_s": 10.0,
    }
    base.update(overrides)
    return SnsSettings(**base)  # type: ignore[arg-type]


def outbound(recipient: str, text: str = "HostDown node-1 critical", *, audience: str = "ops",
             subject: str = "[FIRING] HostDown", delivery_id: int = 1) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, idempotency_key=f"key-{delivery_id}",
                           channel="sms", recipient=recipient, severity="critical",
                           locale="fr", message=RenderedMessage(subject=subject, text=text),
                           audience=audience)


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(upstream=moto.url)
    await p.start()
    yield p
    await p.stop()


async def test_sms_sent_with_attributes(moto: MotoServer, proxy: FaultProxy) -> None:
    """An SMS reaches moto with its text and number; SMSType/SenderID are on the wire."""
    client = SnsClient(settings(proxy.url, sender=SmsSender(sender_id="TOCSIN"),
                                audience_senders={"astreinte": SmsSender(
                                    sms_type="Transactional", sender_id="ASTREINTE",
                                    origination_number="+33700000000")}))
    channel = SnsSmsChannel(client)
    try:
        receipt = await channel.send(outbound("+33612345678", "Alerte déclenchée : é à",
                                              audience="astreinte"))
        await channel.send(outbound("+14155550100", "HostDown", audience="ops"))
    finally:
        await channel.close()
    sms = moto.sms()
    assert [(m["phone_number"], m["message"]) for m in sms] == [
        ("+33612345678", "Alerte déclenchée : é à"), ("+14155550100", "HostDown")]
    assert receipt.provider_id == sms[0]["message_id"]
    assert receipt.segments == 1
    attrs = [_attributes(body) for body in proxy.bodies]
    assert attrs[0] == {"AWS.SNS.SMS.SMSType": "Transactional",
                        "AWS.SNS.SMS.SenderID": "ASTREINTE",
                        "AWS.MM.SMS.OriginationNumber": "+33700000000"}
    assert attrs[1] == {"AWS.SNS.SMS.SMSType": "Transactional",
                        "AWS.SNS.SMS.SenderID": "TOCSIN"}


def _attributes(body: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    index = 1
    while f"MessageAttributes.entry.{index}.Name" in body:
        name = body[f"MessageAttributes.entry.{index}.Name"]
        out[name] = body[f"MessageAttributes.entry.{index}.Value.StringValue"]
        index += 1
    return out


async def test_sms_truncated_to_policy(moto: MotoServer) -> None:
    """A long SMS is cut to the policy's part budget before publishing; parts counted."""
    channel = SnsSmsChannel(SnsClient(settings(moto.url, policy=SmsPolicy(max_segments=1))))
    try:
        receipt = await channel.send(outbound("+33612345678", "mot " * 100))
    finally:
        await channel.close()
    [sms] = moto.sms()
    assert sms["message"].endswith("...")
    assert len(sms["message"]) <= 160
    assert receipt.segments == 1


async def test_sms_overflow_fail_is_permanent(moto: MotoServer) -> None:
    """With overflow 'fail', a too-long SMS fails permanently and nothing is sent."""
    channel = SnsSmsChannel(SnsClient(settings(
        moto.url, policy=SmsPolicy(max_segments=1, overflow="fail"))))
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound("+33612345678", "x" * 200))
    finally:
        await channel.close()
    assert info.value.retryable is False
    assert moto.sms() == []


async def test_invalid_number_is_permanent(moto: MotoServer) -> None:
    """moto's InvalidParameter for a non-E.164 number is a permanent failure."""
    channel = SnsSmsChannel(SnsClient(settings(moto.url)))
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound("0612345678"))
    finally:
        await channel.close()
    assert info.value.retryable is False
    assert "InvalidParameter" in str(info.value)


async def test_topic_publish(moto: MotoServer) -> None:
    """A topic delivery publishes with an ASCII subject and severity/key attributes."""
    arn = moto.client().create_topic(Name="status")["TopicArn"]
    client = SnsClient(settings(moto.url))
    channel = SnsTopicChannel(client, owns_client=True)
    try:
        receipt = await channel.send(outbound(arn, "Incident en cours", subject="[ALERTE] Réseau"))
    finally:
        await channel.close()
    [topic] = [t for t in moto.data()["sns"]["Topic"] if t["arn"] == arn]
    [notification] = topic["sent_notifications"]
    assert notification[0] == receipt.provider_id
    assert notification[1] == "Incident en cours"
    assert notification[2] == "[ALERTE] Reseau"


async def test_unknown_topic_is_permanent(moto: MotoServer) -> None:
    """Publishing to a topic that does not exist (NotFound) fails permanently."""
    channel = SnsTopicChannel(SnsClient(settings(moto.url)), owns_client=True)
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound(f"arn:aws:sns:{REGION}:123456789012:nope"))
    finally:
        await channel.close()
    assert info.value.retryable is False
    assert "NotFound" in str(info.value)


@pytest.mark.parametrize("fault", ["throttling", "503", "503-html"])
async def test_throttling_and_5xx_are_retryable(moto: MotoServer, proxy: FaultProxy,
                                                fault: str) -> None:
    """Throttling (400) and 503 (XML or an HTML page) are retryable, with Retry-After."""
    proxy.faults = [fault]
    proxy.retry_after_s = 7
    channel = SnsSmsChannel(SnsClient(settings(proxy.url)))
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound("+33612345678"))
        assert info.value.retryable is True
        assert info.value.retry_after_s == 7
        assert len(proxy.received_at) == 1  # botocore did not retry by itself
        await channel.send(outbound("+33612345678"))
    finally:
        await channel.close()
    assert len(moto.sms()) == 1


async def test_unreachable_endpoint_is_retryable() -> None:
    """A refused connection is retryable."""
    from tests.services.ports import free_port

    channel = SnsSmsChannel(SnsClient(settings(f"http://127.0.0.1:{free_port()}",
                                               timeout_s=2.0)))
    try:
        with pytest.raises(DeliveryError) as info:
            await channel.send(outbound("+33612345678"))
    finally:
        await channel.close()
    assert info.value.retryable is True


def test_topic_subject_is_sns_safe() -> None:
    """Subjects become ASCII, one line, under 100 characters."""
    assert topic_subject("[ALERTE] Réseau\ncoupé") == "[ALERTE] Reseau coupe"
    long = topic_subject("é" * 300)
    assert len(long) <= 99 and long.endswith("...")
    assert topic_subject("🔥") == "Tocsin notification"


def test_long_provider_message_is_kept_as_an_excerpt() -> None:
    """An SNS error message (e.g. a proxy's HTML page) is cut to a one-line excerpt."""
    import botocore.exceptions

    from adapters.sns import classify_sns_error

    exc = botocore.exceptions.ClientError(
        {"Error": {"Code": "InvalidParameter", "Message": "<html>\n" + "detail " * 500},
         "ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish")
    error = classify_sns_error(exc, "SMS to +336******78")
    assert error.retryable is False
    assert str(error).startswith("SNS InvalidParameter: <html> detail detail")
    assert "\n" not in str(error) and len(str(error)) < 260
