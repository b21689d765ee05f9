"""Signed, expiring acknowledgement-link tokens: one contact, one incident.

A token is ``<payload>.<signature>``, both base64url without padding; the payload is
``incident_id|contact_id|expires_epoch`` and the signature HMAC-SHA256 over it with the
configured key. A mail security scanner may fetch the link: the route behind it shows a
confirmation page on GET and acknowledges only on POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from router.errors import AckTokenError as TokenError

__all__ = ["AckToken", "TokenError", "sign_token", "verify_token"]


@dataclass(frozen=True, slots=True)
class AckToken:
    """What a valid token grants."""

    incident_id: str
    contact_id: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()


def sign_token(key: bytes, incident_id: str, contact_id: str, expires_at: datetime) -> str:
    """A token for ``contact_id`` to acknowledge ``incident_id`` until ``expires_at``."""
    if not key:
        raise ValueError("an acknowledgement link key must not be empty")
    body = f"{incident_id}|{contact_id}|{int(expires_at.timestamp())}"
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_b64(_mac(key, payload))}"


def verify_token(key: bytes, token: str, now: datetime) -> AckToken:
    """The grant of ``token``, or :class:`TokenError` (malformed, bad signature, expired)."""
    payload, sep, signature = token.partition(".")
    if not sep or not payload or not signature:
        raise TokenError("malformed acknowledgement token")
    try:
        given = _unb64(signature)
        body = _unb64(payload).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("malformed acknowledgement token") from exc
    if not hmac.compare_digest(given, _mac(key, payload)):
        raise TokenError("acknowledgement token signature does not match", reason="forged")
    parts = body.split("|")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].isdigit():
        raise TokenError("malformed acknowledgement token")
    expires_at = datetime.fromtimestamp(int(parts[2]), tz=UTC)
    if now >= expires_at:
        raise TokenError("acknowledgement link has expired", reason="expired")
    return AckToken(incident_id=parts[0], contact_id=parts[1], expires_at=expires_at)
