"""An SNS message posted to ``POST /webhook/sns``: parse it, and verify its signature.

SNS signs every message it posts to an HTTPS subscription (``Notification``,
``SubscriptionConfirmation``, ``UnsubscribeConfirmation``): base64 of an RSA PKCS#1 v1.5
signature over the canonical string ``Key\\nValue\\n`` of the keys present, in this order
(AWS "Verifying the signatures of Amazon SNS messages"):

- ``Notification``: Message, MessageId, Subject (when present), Timestamp, TopicArn, Type;
- the confirmations: Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type.

``SignatureVersion`` 1 signs with SHA1, 2 with SHA256. The certificate is the one at
``SigningCertURL`` (which the caller checks against ``sns.inbound.cert_url_pattern``
before fetching it). Everything here is pure: no I/O, the certificate's PEM is passed in.
Every refusal is a :class:`~router.errors.SnsMessageError` with a short ``reason``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, cast

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from router.errors import SnsMessageError

__all__ = [
    "CONFIRMATION_KEYS",
    "NOTIFICATION_KEYS",
    "SIGNATURE_HASHES",
    "MessageType",
    "SnsMessage",
    "canonical_string",
    "parse_sns_message",
    "verify_signature",
]

MessageType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
_TYPES: Final = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")

#: The signed keys of a Notification, in canonical order (Subject only when present).
NOTIFICATION_KEYS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
#: The signed keys of a (Un)SubscriptionConfirmation, in canonical order.
CONFIRMATION_KEYS: Final = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                            "TopicArn", "Type")
#: SignatureVersion → the hash signed with RSA PKCS#1 v1.5.
SIGNATURE_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """One SNS message as posted; ``fields`` keeps every string field as sent."""

    type: MessageType
    message_id: str
    topic_arn: str
    message: str
    timestamp: datetime
    signature_version: str
    signature: bytes
    signing_cert_url: str
    subject: str | None
    subscribe_url: str | None  # confirmations only
    token: str | None  # confirmations only
    fields: Mapping[str, str]

    def signed_keys(self) -> tuple[str, ...]:
        """The keys the signature covers, in canonical order."""
        keys = NOTIFICATION_KEYS if self.type == "Notification" else CONFIRMATION_KEYS
        return tuple(k for k in keys if k in self.fields)


def _required(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SnsMessageError(f"the SNS message has no {key}", reason="malformed")
    return value


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SnsMessageError(f"the SNS Timestamp {text[:40]!r} is not an ISO 8601 time",
                              reason="malformed") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_sns_message(body: bytes, *, header_type: str | None = None) -> SnsMessage:
    """The SNS message of ``body`` (JSON, whatever the Content-Type: SNS sends text/plain).

    ``header_type`` is the ``x-amz-sns-message-type`` header: when given it must name the
    body's ``Type``. Unknown fields are ignored; a missing signed field, an unknown type
    or signature version is refused.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SnsMessageError("the body is not JSON", reason="malformed") from None
    if not isinstance(data, dict):
        raise SnsMessageError("the body is not a JSON object", reason="malformed")
    kind = _required(data, "Type")
    if kind not in _TYPES:
        raise SnsMessageError(f"unsupported SNS message type {kind[:40]!r}",
                              reason="unsupported_type")
    if header_type is not None and header_type != kind:
        raise SnsMessageError(f"x-amz-sns-message-type {header_type[:40]!r} does not match "
                              f"the body's Type {kind!r}", reason="type_mismatch")
    version = _required(data, "SignatureVersion")
    if version not in SIGNATURE_HASHES:
        raise SnsMessageError(f"unsupported SignatureVersion {version[:8]!r} (1 or 2)",
                              reason="unsupported_signature_version")
    try:
        signature = base64.b64decode(_required(data, "Signature"), validate=True)
    except (binascii.Error, ValueError):
        raise SnsMessageError("the Signature is not base64", reason="malformed") from None
    message_type = cast("MessageType", kind)
    keys = NOTIFICATION_KEYS if message_type == "Notification" else CONFIRMATION_KEYS
    fields: dict[str, str] = {}
    for key in keys:
        value = data.get(key)
        if key == "Subject" and value is None:
            continue  # the one optional signed key
        if not isinstance(value, str):
            raise SnsMessageError(f"the SNS message has no {key}", reason="malformed")
        fields[key] = value
    return SnsMessage(
        type=message_type,
        message_id=_required(data, "MessageId"),
        topic_arn=_required(data, "TopicArn"),
        message=fields["Message"],
        timestamp=_timestamp(_required(data, "Timestamp")),
        signature_version=version,
        signature=signature,
        signing_cert_url=_required(data, "SigningCertURL"),
        subject=fields.get("Subject"),
        subscribe_url=fields.get("SubscribeURL"),
        token=fields.get("Token"),
        fields=fields,
    )


def canonical_string(message_type: str, fields: Mapping[str, str]) -> bytes:
    """The bytes SNS signs: ``Key\\nValue\\n`` for each signed key present, in order."""
    keys = NOTIFICATION_KEYS if message_type == "Notification" else CONFIRMATION_KEYS
    parts = [f"{key}\n{fields[key]}\n" for key in keys if key in fields]
    return "".join(parts).encode("utf-8")


def verify_signature(message: SnsMessage, certificate_pem: bytes, now: datetime) -> None:
    """Check ``message``'s signature with the certificate; SnsMessageError when it fails.

    The certificate must hold an RSA key and be valid at ``now``.
    """
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise SnsMessageError("the signing certificate is not a PEM X.509 certificate",
                              reason="certificate_invalid") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SnsMessageError("the signing certificate is not valid now",
                              reason="certificate_invalid")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsMessageError("the signing certificate does not hold an RSA key",
                              reason="certificate_invalid")
    algorithm = SIGNATURE_HASHES[message.signature_version]()
    try:
        key.verify(message.signature, canonical_string(message.type, message.fields),
                   padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SnsMessageError("the SNS signature does not match the message",
                              reason="bad_signature", status=403) from None
