"""The push channel: Web Push (RFC 8030) with aes128gcm (RFC 8291) and VAPID (RFC 8292).

The recipient of a ``push`` delivery is a contact id; the message goes to every browser
subscription stored for that contact (``POST /api/v1/push/subscriptions``). For each one:
the JSON payload (``title``, ``body``, ``severity``, ``tag``) is encrypted with the
subscription's keys (pywebpush's encoder, i.e. http_ece), a VAPID JWT is signed with a
**fresh claims dict per request** (``aud`` = the push service origin, ``exp`` = now +
12 h, ``sub`` from config), and the request is POSTed with aiohttp and a timeout.

Headers follow the severity: ``Urgency`` high/normal/low and ``TTL`` (how long the push
service keeps the message for an offline device) 1 h / 4 h / 24 h for critical /
warning / anything else. The payload is checked before sending: push services must
accept 4096 bytes of encrypted body, i.e. 3993 bytes of plaintext; a longer body text is
shortened (with an ellipsis) to fit, a message that cannot fit fails permanently.

Answers: 2xx sent; 404/410 the subscription is gone: it is removed and counts as a
permanent failure for that subscription; 429 retryable with the push service's
Retry-After; 5xx and connection errors retryable; other 4xx permanent (bad VAPID key,
payload refused). A contact with no subscription fails permanently (a route fallback
then applies). Only a short single-line excerpt of a refusal's body is kept.
Subscriptions already served for a delivery are remembered (bounded), so a retry after a
partial failure does not notify the same browser twice.

Before each request the endpoint is checked again (:mod:`router.push_endpoints`:
``https`` on a public host unless ``allowed_endpoints`` lists it): a refused endpoint
fails permanently for that subscription. The connector's resolver refuses non-public
addresses too, so a host name that changes its answer between check and connect is not
followed to a private address.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from router.errors import DeliveryError, excerpt
from router.masking import mask_address
from router.models import OutboundMessage, Receipt
from router.push_endpoints import EndpointPolicy, EndpointRefused, is_public_address
from router.store.base import PushSubscription

__all__ = [
    "MAX_ENCRYPTED_BYTES",
    "MAX_PLAINTEXT_BYTES",
    "SubscriptionStore",
    "WebPushChannel",
    "WebPushSettings",
    "build_payload",
    "headers_for_severity",
    "parse_retry_after",
]

_log = structlog.get_logger(__name__)

#: RFC 8030 §7.2: a push service must accept at least 4096 bytes of payload body.
MAX_ENCRYPTED_BYTES: Final = 4096
#: aes128gcm overhead for one record: 86-byte header (salt, rs, idlen, 65-byte key),
#: 16-byte tag and the 1-byte padding delimiter.
MAX_PLAINTEXT_BYTES: Final = MAX_ENCRYPTED_BYTES - 86 - 16 - 1
_VAPID_LIFETIME_S: Final = 12 * 3600
_SERVED_MEMORY: Final = 10_000  # deliveries whose served subscriptions are remembered

#: (Urgency, TTL seconds) by severity; anything else uses the "default" entry.
_BY_SEVERITY: Final[dict[str, tuple[str, int]]] = {
    "critical": ("high", 3600),
    "warning": ("normal", 4 * 3600),
    "default": ("low", 24 * 3600),
}


class SubscriptionStore(Protocol):
    """What the push channel needs of the store."""

    async def push_subscriptions(self, contact_id: str | None = None) -> list[PushSubscription]:
        """Subscriptions of one contact."""
        ...

    async def delete_push_endpoint(self, endpoint: str) -> bool:
        """Remove a subscription that the push service says is gone."""
        ...


@dataclass(frozen=True, slots=True)
class WebPushSettings:
    """VAPID identity and HTTP timeout."""

    vapid_private_key: str  # base64url raw 32-byte key or base64 DER (one line)
    vapid_subject: str  # mailto:... or https://...
    timeout_s: float = 10.0
    # URL prefixes exempt from the https + public-host check (router.push_endpoints).
    allowed_endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.vapid_subject.startswith(("mailto:", "https://")):
            raise ValueError("vapid_subject must start with mailto: or https://")
        if self.timeout_s <= 0:
            raise ValueError("webpush timeout_s must be > 0")


def headers_for_severity(severity: str) -> tuple[str, int]:
    """``(Urgency, TTL seconds)`` for a severity."""
    return _BY_SEVERITY.get(severity, _BY_SEVERITY["default"])


def build_payload(message: OutboundMessage) -> bytes:
    """The JSON payload, its body shortened if needed to fit :data:`MAX_PLAINTEXT_BYTES`.

    Raises DeliveryError (permanent) when even an empty body does not fit.
    """
    data: dict[str, Any] = {
        "title": message.message.subject,
        "body": message.message.text,
        "severity": message.severity,
        "tag": message.idempotency_key[:32],
    }

    def encode() -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    payload = encode()
    if len(payload) <= MAX_PLAINTEXT_BYTES:
        return payload
    body: str = data["body"]
    data["body"] = ""
    room = MAX_PLAINTEXT_BYTES - len(encode()) - len("…".encode())
    if room < 0:
        raise DeliveryError(f"push payload of {len(payload)} bytes cannot fit "
                            f"{MAX_PLAINTEXT_BYTES} bytes even without its body",
                            retryable=False)
    # JSON escaping can grow a character: shrink until the encoded payload fits.
    cut = body.encode()[:room].decode(errors="ignore")
    while True:
        data["body"] = cut.rstrip() + "…"
        payload = encode()
        if len(payload) <= MAX_PLAINTEXT_BYTES or not cut:
            return payload
        cut = cut[: max(0, len(cut) - max(1, (len(payload) - MAX_PLAINTEXT_BYTES)))]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class _PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default, but refuses a host with a non-public address."""

    def __init__(self, policy: EndpointPolicy) -> None:
        self._policy = policy
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """The addresses of ``host``; OSError when one of them is not public."""
        results = await self._inner.resolve(host, port, family)
        if self._policy.allowlisted_host(host, port):
            return results
        private = [r["host"] for r in results if not is_public_address(r["host"])]
        if private:
            raise OSError(f"push endpoint host {host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class _Result:
    endpoint: str
    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    error: str = ""
    location: str | None = None


class WebPushChannel:
    """:class:`~router.channel.Channel` "push" (Web Push to every subscription)."""

    name = "push"

    def __init__(self, settings: WebPushSettings, subscriptions: SubscriptionStore) -> None:
        self._settings = settings
        self._subscriptions = subscriptions
        # Parsed once at wiring time: a bad key fails the startup, not the first alert.
        self._vapid = Vapid02.from_string(private_key=settings.vapid_private_key)
        self._policy = EndpointPolicy(settings.allowed_endpoints,
                                      dns_timeout_s=min(settings.timeout_s, 5.0))
        self._session: aiohttp.ClientSession | None = None
        self._served: OrderedDict[int, set[str]] = OrderedDict()

    async def send(self, message: OutboundMessage) -> Receipt:
        """Push ``message`` to every subscription of contact ``message.recipient``."""
        subs = await self._subscriptions.push_subscriptions(message.recipient)
        if not subs:
            raise DeliveryError(f"contact {mask_address(message.recipient)} has no push "
                                "subscription", retryable=False)
        served = self._served.get(message.delivery_id, set())
        todo = [s for s in subs if s.endpoint not in served]
        payload = build_payload(message)
        results = await asyncio.gather(*(self._push(s, payload, message) for s in todo))
        ok = [r for r in results if r.ok]
        served |= {r.endpoint for r in ok}
        retry = [r for r in results if r.retryable]
        if retry:
            self._remember(message.delivery_id, served)
            waits = [r.retry_after_s for r in retry if r.retry_after_s is not None]
            raise DeliveryError("; ".join(r.error for r in retry), retryable=True,
                                retry_after_s=max(waits) if waits else None)
        self._served.pop(message.delivery_id, None)
        if not ok and not served:
            raise DeliveryError("; ".join(r.error for r in results) or "no subscription "
                                "accepted the push", retryable=False)
        failed = [r for r in results if not r.ok]
        detail = f"{len(served)} subscription(s) notified"
        if failed:
            detail += f", {len(failed)} refused: " + "; ".join(r.error for r in failed)
        location = next((r.location for r in ok if r.location), None)
        return Receipt(provider_id=location, detail=detail)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _remember(self, delivery_id: int, served: set[str]) -> None:
        self._served[delivery_id] = served
        self._served.move_to_end(delivery_id)
        while len(self._served) > _SERVED_MEMORY:
            self._served.popitem(last=False)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(self._policy))
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s))
        return self._session

    def _headers(self, endpoint: str, severity: str) -> dict[str, str]:
        parts = urlsplit(endpoint)
        # A fresh claims dict per request: signing libraries mutate what they are given.
        claims = {"sub": self._settings.vapid_subject,
                  "aud": f"{parts.scheme}://{parts.netloc}",
                  "exp": int(time.time()) + _VAPID_LIFETIME_S}
        urgency, ttl_s = headers_for_severity(severity)
        headers: dict[str, str] = dict(self._vapid.sign(claims))
        headers.update({"TTL": str(ttl_s), "Urgency": urgency,
                        "Content-Encoding": "aes128gcm",
                        "Content-Type": "application/octet-stream"})
        return headers

    async def _push(self, sub: PushSubscription, payload: bytes,
                    message: OutboundMessage) -> _Result:
        where = urlsplit(sub.endpoint).netloc
        try:
            await self._policy.check(sub.endpoint)
        except EndpointRefused as exc:
            _log.warning("push.endpoint_refused", subscription_id=sub.id, reason=str(exc),
                         contact=mask_address(sub.contact_id),
                         delivery_id=message.delivery_id)
            return _Result(sub.endpoint, ok=False,
                           error=f"subscription {sub.id} endpoint refused: {exc}")
        except (OSError, TimeoutError) as exc:
            return _Result(sub.endpoint, ok=False, retryable=True,
                           error=f"cannot resolve push service {where}: "
                                 f"{excerpt(str(exc) or type(exc).__name__)}")
        try:
            body: bytes = WebPusher(sub.info()).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError) as exc:  # corrupt stored keys
            return _Result(sub.endpoint, ok=False,
                           error=f"subscription {sub.id} keys unusable: {exc}")
        if len(body) > MAX_ENCRYPTED_BYTES:
            return _Result(sub.endpoint, ok=False,
                           error=f"encrypted payload {len(body)} bytes > {MAX_ENCRYPTED_BYTES}")
        try:
            async with self._http().post(sub.endpoint, data=body,
                                         headers=self._headers(sub.endpoint,
                                                               message.severity)) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                location = resp.headers.get("Location")
                text = excerpt((await resp.content.read(4096)).decode(errors="replace"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Result(sub.endpoint, ok=False, retryable=True,
                           error=f"cannot reach push service {where}: {excerpt(repr(exc))}")
        if 200 <= status < 300:
            return _Result(sub.endpoint, ok=True, location=location)
        error = f"push service {where} answered {status}: {text}"
        if status in (404, 410):
            removed = await self._subscriptions.delete_push_endpoint(sub.endpoint)
            _log.info("push.subscription_gone", subscription_id=sub.id, status=status,
                      contact=mask_address(sub.contact_id), removed=removed,
                      delivery_id=message.delivery_id)
            return _Result(sub.endpoint, ok=False, error=f"{error} (subscription removed)")
        if status == 429 or status >= 500:
            return _Result(sub.endpoint, ok=False, retryable=True,
                           retry_after_s=retry_after, error=error)
        return _Result(sub.endpoint, ok=False, error=error)
