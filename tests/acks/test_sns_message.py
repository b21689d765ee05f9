"""SNS message parsing and signature verification (both signature versions), pure."""

from __future__ import annotations

import base64
from datetime import timedelta

import orjson
import pytest

from router.acks.sns_dev import new_signing_identity, signed_message
from router.acks.sns_message import canonical_string, parse_sns_message, verify_signature
from router.errors import SnsMessageError
from tests.acks.sns_peer import T0, TOPIC, identity

CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"


def _signed(version: str = "2", **extra: str) -> dict[str, str]:
    return signed_message(identity().key_pem, message_type="Notification", topic_arn=TOPIC,
                          message='{"messageBody": "oui"}', cert_url=CERT_URL, at=T0,
                          signature_version=version, **extra)


def _parse(data: dict[str, str]) -> object:
    return parse_sns_message(orjson.dumps(data), header_type=data["Type"])


def test_canonical_string_of_a_notification_follows_the_documented_order() -> None:
    """Message, MessageId, Subject, Timestamp, TopicArn, Type: Key\\nValue\\n each."""
    fields = {"Type": "Notification", "TopicArn": "t", "Timestamp": "ts", "MessageId": "id",
              "Message": "m", "Subject": "s", "UnsubscribeURL": "not signed"}
    assert canonical_string("Notification", fields) == (
        b"Message\nm\nMessageId\nid\nSubject\ns\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n")


def test_canonical_string_of_a_confirmation_has_subscribe_url_and_token() -> None:
    """Confirmations sign SubscribeURL and Token, in their alphabetical places."""
    fields = {"Type": "SubscriptionConfirmation", "TopicArn": "t", "Timestamp": "ts",
              "MessageId": "id", "Message": "m", "SubscribeURL": "u", "Token": "k"}
    assert canonical_string("SubscriptionConfirmation", fields) == (
        b"Message\nm\nMessageId\nid\nSubscribeURL\nu\nTimestamp\nts\nToken\nk\n"
        b"TopicArn\nt\nType\nSubscriptionConfirmation\n")


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_verifies(version: str) -> None:
    """SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA) both verify."""
    message = parse_sns_message(orjson.dumps(_signed(version)), header_type="Notification")
    verify_signature(message, identity().cert_pem, T0)
    assert message.topic_arn == TOPIC and message.timestamp == T0


def test_subject_is_signed_when_present() -> None:
    """A Subject takes part in the signature: changing it breaks the signature."""
    data = _signed(subject="hello")
    verify_signature(parse_sns_message(orjson.dumps(data)), identity().cert_pem, T0)
    data["Subject"] = "hullo"
    with pytest.raises(SnsMessageError, match="does not match") as err:
        verify_signature(parse_sns_message(orjson.dumps(data)), identity().cert_pem, T0)
    assert err.value.reason == "bad_signature" and err.value.status == 403


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn"])
def test_a_tampered_field_fails(field: str) -> None:
    """Any signed field changed after signing: bad_signature."""
    data = _signed()
    data[field] = data[field].replace("oui", "non") if field == "Message" else (
        "2026-12-06T14:00:01.000Z" if field == "Timestamp" else data[field] + "x")
    with pytest.raises(SnsMessageError) as err:
        verify_signature(parse_sns_message(orjson.dumps(data)), identity().cert_pem, T0)
    assert err.value.reason == "bad_signature"


def test_version_1_signature_does_not_pass_as_version_2() -> None:
    """The hash follows SignatureVersion: a SHA1 signature relabelled 2 fails."""
    data = _signed("1")
    data["SignatureVersion"] = "2"
    with pytest.raises(SnsMessageError, match="does not match"):
        verify_signature(parse_sns_message(orjson.dumps(data)), identity().cert_pem, T0)


def test_another_key_fails() -> None:
    """A certificate of another key does not verify the message."""
    other = new_signing_identity(T0)
    with pytest.raises(SnsMessageError, match="does not match"):
        verify_signature(parse_sns_message(orjson.dumps(_signed())), other.cert_pem, T0)


def test_expired_certificate_and_garbage_are_refused() -> None:
    """Certificate not valid now, or not a certificate: certificate_invalid."""
    message = parse_sns_message(orjson.dumps(_signed()))
    short = new_signing_identity(T0, days=1)
    with pytest.raises(SnsMessageError, match="not valid now"):
        verify_signature(message, short.cert_pem, T0 + timedelta(days=2))
    with pytest.raises(SnsMessageError) as err:
        verify_signature(message, b"<html>not a pem</html>", T0)
    assert err.value.reason == "certificate_invalid"


@pytest.mark.parametrize(("change", "reason"), [
    ({"Type": "Weird"}, "unsupported_type"),
    ({"SignatureVersion": "3"}, "unsupported_signature_version"),
    ({"Signature": "%%%"}, "malformed"),
    ({"MessageId": ""}, "malformed"),
    ({"SigningCertURL": None}, "malformed"),
    ({"Timestamp": "yesterday"}, "malformed"),
])
def test_malformed_messages_are_refused(change: dict[str, str | None], reason: str) -> None:
    """Each defect has its own reason."""
    data: dict[str, str | None] = {**_signed(), **change}
    with pytest.raises(SnsMessageError) as err:
        parse_sns_message(orjson.dumps({k: v for k, v in data.items() if v is not None}))
    assert err.value.reason == reason


def test_body_and_header_must_agree() -> None:
    """x-amz-sns-message-type must name the body's Type; a body must be a JSON object."""
    with pytest.raises(SnsMessageError) as err:
        parse_sns_message(orjson.dumps(_signed()), header_type="SubscriptionConfirmation")
    assert err.value.reason == "type_mismatch"
    for raw in (b"not json", b"[1, 2]"):
        with pytest.raises(SnsMessageError, match=r"not a JSON|not JSON"):
            parse_sns_message(raw)


def test_signature_is_base64_of_the_rsa_signature() -> None:
    """The decoded signature is one RSA block (256 bytes for a 2048-bit key)."""
    assert len(base64.b64decode(_signed()["Signature"])) == 256
