"""A local stand-in for SNS: a self-signed signing certificate, and messages signed the
way SNS signs them.

For ``tocsin dev reply`` and ``make run``'s local world (a newcomer plays the whole SMS
reply loop without an AWS account) and for the tests. The key is made on the machine
that uses it and never committed; Tocsin trusts its certificate only when
``sns.inbound.cert_url_pattern`` points at where it is served (e.g.
``^http://127\\.0\\.0\\.1:8091/``).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from router.acks.sns_message import SIGNATURE_HASHES, canonical_string

__all__ = ["SigningIdentity", "inbound_sms_message", "new_signing_identity", "signed_message"]


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """An RSA private key and its self-signed certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


def new_signing_identity(now: datetime, *, days: int = 365,
                         common_name: str = "sns.local.tocsin") -> SigningIdentity:
    """A fresh 2048-bit RSA key and a self-signed certificate valid from ``now``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return SigningIdentity(
        key_pem=key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
    )


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def signed_message(key_pem: bytes, *, message_type: str, topic_arn: str, message: str,
                   cert_url: str, at: datetime, signature_version: str = "2",
                   message_id: str | None = None, subject: str | None = None,
                   subscribe_url: str | None = None, token: str | None = None) -> dict[str, str]:
    """The JSON object SNS would post: every field, signed over the canonical string."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    body: dict[str, str] = {
        "Type": message_type,
        "MessageId": message_id or str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": _timestamp(at),
        "SignatureVersion": signature_version,
        "SigningCertURL": cert_url,
    }
    if message_type == "Notification":
        if subject is not None:
            body["Subject"] = subject
        body["UnsubscribeURL"] = f"{cert_url.rsplit('/', 1)[0]}/?Action=Unsubscribe"
    else:
        body["Token"] = token or uuid.uuid4().hex
        body["SubscribeURL"] = subscribe_url or ""
    algorithm = SIGNATURE_HASHES[signature_version]()
    signature = key.sign(canonical_string(message_type, body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode("ascii")
    return body


def inbound_sms_message(origination: str, text: str, *, destination: str,
                        inbound_message_id: str | None = None) -> str:
    """The ``Message`` AWS End User Messaging publishes for one SMS reply."""
    return orjson.dumps({
        "originationNumber": origination,
        "destinationNumber": destination,
        "messageKeyword": "KEYWORD_" + destination.lstrip("+"),
        "messageBody": text,
        "inboundMessageId": inbound_message_id or str(uuid.uuid4()),
        "previousPublishedMessageId": str(uuid.uuid4()),
    }).decode("utf-8")
