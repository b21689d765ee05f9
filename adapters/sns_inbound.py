"""The HTTP side of SNS inbound: fetch signing certificates, confirm subscriptions.

``POST /webhook/sns`` (:mod:`router.http.sns_webhook`) verifies every SNS message with the
certificate at its ``SigningCertURL``; :class:`SnsInboundClient` fetches it, only when the
URL matches ``sns.inbound.cert_url_pattern`` (matched from the start of the whole URL),
with a timeout and a size cap, and keeps the last :data:`CERT_CACHE_SIZE` certificates
by URL (AWS rotates certificates under new URLs, so a URL's content never changes).
A ``SubscriptionConfirmation`` is confirmed by a GET on its ``SubscribeURL``, only when
it matches ``sns.inbound.subscribe_url_pattern``.

What cannot be fetched now (timeout, connection refused, 5xx) is a
:class:`~router.errors.SnsMessageError` answered 503, so that SNS delivers the message
again; a URL outside the pattern is refused (403) without any request.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import aiohttp

from router.errors import SnsMessageError, excerpt

__all__ = ["CERT_CACHE_SIZE", "MAX_CERT_BYTES", "SnsInboundClient", "SnsInboundSettings"]

#: Certificates kept by URL (a region's SNS uses one at a time; a few regions at most).
CERT_CACHE_SIZE: Final = 16
#: Largest certificate accepted (an SNS certificate PEM is under 3 KiB).
MAX_CERT_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class SnsInboundSettings:
    """Where certificates and subscription confirmations may be fetched, and how long."""

    cert_url_pattern: str
    subscribe_url_pattern: str
    timeout_s: float = 5.0


class SnsInboundClient:
    """Certificate fetcher (cached) and subscription confirmer; one aiohttp session."""

    def __init__(self, settings: SnsInboundSettings) -> None:
        self._settings = settings
        self._cert_url = re.compile(settings.cert_url_pattern)
        self._subscribe_url = re.compile(settings.subscribe_url_pattern)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # certificate downloads done (tests check the cache)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
                auto_decompress=True)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def cert_url_allowed(self, url: str) -> bool:
        """True when ``url`` matches ``cert_url_pattern``."""
        return self._cert_url.match(url) is not None

    async def certificate(self, url: str) -> bytes:
        """The PEM at ``url`` (cached); SnsMessageError when refused or unavailable."""
        if not self.cert_url_allowed(url):
            raise SnsMessageError("SigningCertURL does not match sns.inbound.cert_url_pattern",
                                  reason="cert_url_refused", status=403)
        cached = self._cache.get(url)
        if cached is not None:
            self._cache.move_to_end(url)
            return cached
        async with self._lock:  # one download per URL even when a burst arrives
            cached = self._cache.get(url)
            if cached is not None:
                return cached
            pem = await self._get(url, what="signing certificate", reason="certificate_unavailable")
            if len(pem) > MAX_CERT_BYTES:
                raise SnsMessageError(f"the signing certificate is over {MAX_CERT_BYTES} bytes",
                                      reason="certificate_invalid")
            self.fetches += 1
            self._cache[url] = pem
            while len(self._cache) > CERT_CACHE_SIZE:
                self._cache.popitem(last=False)
            return pem

    async def confirm_subscription(self, url: str) -> None:
        """GET ``url`` (a SubscribeURL); SnsMessageError when refused or it fails."""
        if self._subscribe_url.match(url) is None:
            raise SnsMessageError("SubscribeURL does not match "
                                  "sns.inbound.subscribe_url_pattern",
                                  reason="subscribe_url_refused", status=403)
        await self._get(url, what="subscription confirmation", reason="confirmation_failed")

    async def _get(self, url: str, *, what: str, reason: str) -> bytes:
        """The body of ``url`` (at most one byte over :data:`MAX_CERT_BYTES`)."""
        try:
            async with self._http().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    body = await response.content.read(200)
                    raise SnsMessageError(
                        f"the {what} GET answered {response.status}: "
                        f"{excerpt(body.decode('utf-8', 'replace'))}", reason=reason, status=503)
                return await response.content.read(MAX_CERT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnsMessageError(f"the {what} could not be fetched: "
                                  f"{excerpt(str(exc) or type(exc).__name__)}",
                                  reason=reason, status=503) from None
