"""Webhook authentication exactly as Alertmanager's ``http_config`` sends it.

``authorization: {credentials: T}`` (type Bearer by default) sends
``Authorization: Bearer T``; ``basic_auth: {username: U, password: P}`` sends
``Authorization: Basic base64(U:P)``. Alertmanager allows only one of the two per
receiver, so when both are configured here either one is accepted. Comparisons are
constant-time (:func:`hmac.compare_digest`) on the UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from router.config import WebhookConfig

__all__ = ["WebhookAuth"]


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    """Checks an ``Authorization`` header against the configured credentials."""

    bearer_token: bytes | None = None
    basic_username: bytes | None = None
    basic_password: bytes | None = None

    @classmethod
    def from_config(cls, config: WebhookConfig) -> WebhookAuth:
        """Take the credentials from ``webhook.bearer_token`` / ``webhook.basic_auth``."""
        token = config.bearer_token.get_secret_value().encode() if config.bearer_token else None
        basic = config.basic_auth
        return cls(
            bearer_token=token,
            basic_username=basic.username.encode() if basic else None,
            basic_password=basic.password.get_secret_value().encode() if basic else None,
        )

    @property
    def enabled(self) -> bool:
        """False when no credentials are configured (the webhook is open)."""
        return self.bearer_token is not None or self.basic_username is not None

    def challenges(self) -> list[tuple[str, str]]:
        """``WWW-Authenticate`` headers for a 401, one per accepted scheme."""
        headers: list[tuple[str, str]] = []
        if self.bearer_token is not None:
            headers.append(("WWW-Authenticate", 'Bearer realm="tocsin"'))
        if self.basic_username is not None:
            headers.append(("WWW-Authenticate", 'Basic realm="tocsin", charset="UTF-8"'))
        return headers

    def check(self, authorization: str | None) -> str | None:
        """Return None when the header is acceptable, else why it is not (for the 401)."""
        if not self.enabled:
            return None
        if not authorization:
            return "missing credentials: send an Authorization header"
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.bearer_token is not None:
            # aiohttp decodes header bytes that are not UTF-8 (``\xff``) as surrogate
            # escapes: encode them back to the bytes sent, which then do not match.
            if hmac.compare_digest(value.encode("utf-8", "surrogateescape"), self.bearer_token):
                return None
            return "invalid bearer token"
        if scheme == "basic" and self.basic_username is not None:
            if self._basic_ok(value):
                return None
            return "invalid basic auth credentials"
        accepted = " or ".join(
            name
            for name, on in (("Bearer", self.bearer_token is not None),
                             ("Basic", self.basic_username is not None))
            if on
        )
        return f"unsupported authorization scheme: use {accepted}"

    def _basic_ok(self, value: str) -> bool:
        assert self.basic_username is not None and self.basic_password is not None
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        username, sep, password = decoded.partition(b":")
        user_ok = hmac.compare_digest(username, self.basic_username)
        password_ok = hmac.compare_digest(password, self.basic_password)
        return bool(sep) and user_ok and password_ok
