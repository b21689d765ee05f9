"""Who may call which endpoint: API tokens with scopes, and the webhook's credentials.

:class:`ApiAuth` checks every endpoint (``docs/service.md``, "API tokens"). A route needs
one scope: ``ingest`` (the webhook), ``read`` (``GET /api/v1/*``, ``/metrics``) or
``operate`` (``POST /-/reload``, push subscription changes); ``admin`` grants every
scope. Credentials, compared in constant time on SHA-256 digests:

- ``api.tokens`` entries, sent as ``Authorization: Bearer <token>``, with their scopes;
- ``webhook.bearer_token`` / ``webhook.basic_auth`` (below): scope ``ingest`` only;
- ``webpush.api_token``: the push subscription endpoints only (as before API tokens).

With none of the first two configured the API is open (local development; the service
logs a warning at start), except the push subscription endpoints, which always need a
credential. A missing or unknown credential is a 401 with ``WWW-Authenticate``; a known
one without the scope is a 403.

:class:`WebhookAuth`: webhook authentication exactly as Alertmanager's ``http_config`` sends it:

``authorization: {credentials: T}`` (type Bearer by default) sends
``Authorization: Bearer T``; ``basic_auth: {username: U, password: P}`` sends
``Authorization: Basic base64(U:P)``. Alertmanager allows only one of the two per
receiver, so when both are configured here either one is accepted. Comparisons are
constant-time (:func:`hmac.compare_digest`) on the UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Final, Literal

from aiohttp import hdrs, web

from router.config import ServiceConfig, WebhookConfig
from router.http.responses import Handler, json_error

__all__ = [
    "API_AUTH",
    "ApiAuth",
    "Denial",
    "RouteScope",
    "WebhookAuth",
    "auth_warnings",
    "requires",
]

#: What a route needs: a user scope, or ``push_*`` (the push subscription endpoints:
#: ``webpush.api_token``, or an API token with ``read`` to list / ``operate`` to change).
RouteScope = Literal["ingest", "read", "operate", "push_read", "push_operate"]

_WEBHOOK = "webhook credentials"
_PUSH = "webpush.api_token"
#: The user scope a route scope is granted by (``admin`` grants all of them).
_USER_SCOPE: Final[dict[str, str]] = {"ingest": "ingest", "read": "read", "operate": "operate",
                                      "push_read": "read", "push_operate": "operate"}


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


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request is refused: 401 (no valid credential) or 403 (scope missing)."""

    status: int
    error: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """``unauthorized`` or ``forbidden`` (the webhook's rejection metric label)."""
        return "unauthorized" if self.status == 401 else "forbidden"

    def response(self) -> web.Response:
        """The JSON error answer."""
        return json_error(self.status, self.error, headers=self.headers)


@dataclass(frozen=True, slots=True)
class _Credential:
    name: str
    digest: bytes  # SHA-256 of the secret (bearer token, or "user:password" for basic)
    scopes: frozenset[str]


def _sha256(text: str) -> bytes:
    # surrogateescape: aiohttp decodes undecodable header bytes that way; they still
    # hash (and so simply do not match) instead of raising.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def _match(digest: bytes, credentials: tuple[_Credential, ...]) -> _Credential | None:
    found: _Credential | None = None
    for credential in credentials:  # every one compared: the time does not say which
        if hmac.compare_digest(digest, credential.digest) and found is None:
            found = credential
    return found


@dataclass(frozen=True, slots=True)
class ApiAuth:
    """Checks an ``Authorization`` header for the scope a route needs."""

    bearer: tuple[_Credential, ...] = ()  # api.tokens, webhook.bearer_token, push token
    webhook: WebhookAuth = field(default_factory=WebhookAuth)
    has_api_tokens: bool = False

    @classmethod
    def from_config(cls, config: ServiceConfig) -> ApiAuth:
        """Credentials from ``api.tokens``, ``webhook.*`` and ``webpush.api_token``."""
        bearer = [_Credential(token.name, token.digest(), frozenset(token.scopes))
                  for token in config.api.tokens]
        webhook = WebhookAuth.from_config(config.webhook)
        if config.webhook.bearer_token is not None:
            bearer.append(_Credential(_WEBHOOK, _sha256(
                config.webhook.bearer_token.get_secret_value()), frozenset({"ingest"})))
        if config.webpush is not None:
            bearer.append(_Credential(_PUSH, _sha256(
                config.webpush.api_token.get_secret_value()),
                frozenset({"push_read", "push_operate"})))
        return cls(bearer=tuple(bearer), webhook=webhook,
                   has_api_tokens=bool(config.api.tokens))

    @property
    def enabled(self) -> bool:
        """False when neither API tokens nor webhook credentials are configured (open)."""
        return self.has_api_tokens or self.webhook.enabled

    def check(self, authorization: str | None, scope: RouteScope) -> Denial | None:
        """None when the request may go on, else the :class:`Denial` to answer."""
        if not self.enabled and not scope.startswith("push_"):
            return None
        user_scope = _USER_SCOPE[scope]
        if not authorization:
            return self._unauthorized("missing credentials: send an Authorization header",
                                      scope)
        kind, _, value = authorization.strip().partition(" ")
        kind = kind.lower()
        value = value.strip()
        if kind == "bearer":
            credential = _match(_sha256(value), self.bearer)
            if credential is None:
                return self._unauthorized("invalid bearer token", scope)
        elif kind == "basic" and self.webhook.basic_username is not None:
            if self.webhook.check(f"Basic {value}") is not None:
                return self._unauthorized("invalid basic auth credentials", scope)
            credential = _Credential(_WEBHOOK, b"", frozenset({"ingest"}))
        else:
            basic = scope == "ingest" and self.webhook.basic_username is not None
            return self._unauthorized(
                "unsupported authorization scheme: use " + ("Bearer or Basic" if basic
                                                            else "Bearer"), scope)
        if scope in credential.scopes or user_scope in credential.scopes or (
                "admin" in credential.scopes):
            return None
        if credential.name == _WEBHOOK:
            granted = "the webhook credentials grant scope 'ingest' only"
        elif credential.name == _PUSH:
            granted = "webpush.api_token grants the push subscription endpoints only"
        else:
            granted = (f"token {credential.name!r} grants "
                       + ", ".join(repr(s) for s in sorted(credential.scopes)))
        return Denial(403, f"{granted}; this endpoint needs scope {user_scope!r} (or 'admin')")

    def _unauthorized(self, error: str, scope: RouteScope) -> Denial:
        headers: list[tuple[str, str]] = []
        if scope == "ingest" and not self.has_api_tokens:
            headers = self.webhook.challenges()  # exactly what the webhook offered before
        if not headers:
            realm = "tocsin-push" if scope.startswith("push_") else "tocsin"
            headers = [("WWW-Authenticate", f'Bearer realm="{realm}"')]
            if scope == "ingest" and self.webhook.basic_username is not None:
                headers.append(("WWW-Authenticate", 'Basic realm="tocsin", charset="UTF-8"'))
        return Denial(401, error, headers)


API_AUTH: web.AppKey[ApiAuth] = web.AppKey("api_auth")


def requires(scope: RouteScope, handler: Handler) -> Handler:
    """Wrap a route handler so that it runs only for a credential with ``scope``."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        denied = request.app[API_AUTH].check(request.headers.get(hdrs.AUTHORIZATION), scope)
        if denied is not None:
            return denied.response()
        return await handler(request)

    guarded.__name__ = getattr(handler, "__name__", "guarded")
    guarded.__doc__ = handler.__doc__
    return guarded


def auth_warnings(config: ServiceConfig) -> list[str]:
    """What the service warns about at start: an open API, or a scope nobody holds."""
    webhook = config.webhook.bearer_token is not None or config.webhook.basic_auth is not None
    if not config.api.tokens and not webhook:
        return [f"the HTTP API is unauthenticated: anyone who reaches {config.listen} can "
                "post alerts, read incidents, deliveries and metrics, and reload the rules; "
                "configure api.tokens (docs/service.md)"]
    granted = {scope for token in config.api.tokens for scope in token.scopes}
    if granted & {"read", "admin"}:
        return []
    closed = "GET /api/v1/*" + ("" if config.api.public_metrics else " and /metrics")
    return [f"no API token has scope 'read' or 'admin': {closed} answer 401/403 to every "
            "request; add an api.tokens entry with scope read"]
