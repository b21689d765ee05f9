"""Which Web Push endpoints Tocsin may POST to: ``https`` on a public host, or allowlisted.

A push subscription's endpoint is a URL the subscriber chose; without a check, whoever
holds the subscription token could make Tocsin POST to ``http://127.0.0.1:…`` or to a
cloud metadata address (server-side request forgery). So an endpoint must be ``https``,
carry no credentials, and its host must be public: an IP literal is checked directly, a
host name is resolved (the event loop's ``getaddrinfo``, with a timeout) and **every**
address must be public — not loopback, private, link-local, multicast, unspecified,
reserved or otherwise non-global (IPv4-mapped IPv6 addresses are checked as IPv4).

``webpush.allowed_endpoints`` lifts the check for the endpoints it lists (the local demo
push service and the tests run on ``http://127.0.0.1``). Each entry is a URL prefix:
``scheme://host[:port][/path]``; an endpoint matches when its scheme, host and port are
the entry's (the default port of the scheme when absent) and its path starts with the
entry's path, taken as whole segments (``/push`` matches ``/push/abc``, not ``/pushy``).

The check runs when a subscription is registered (the API answers 400) and again before
every send (rows may predate it, and DNS answers change): a refused send fails
permanently. The adapter also refuses non-public addresses in its connector's resolver,
so a name that resolves differently at connect time is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from router.errors import EndpointRefused

__all__ = [
    "DNS_TIMEOUT_S",
    "EndpointPolicy",
    "EndpointRefused",
    "is_public_address",
    "parse_allowed_endpoint",
]

#: Upper bound on resolving an endpoint's host name for the check.
DNS_TIMEOUT_S: Final = 5.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Allowed:
    scheme: str
    host: str
    port: int
    path: str  # "" or "/a/b" without a trailing slash

    def matches(self, parts: SplitResult) -> bool:
        if parts.scheme != self.scheme or (parts.hostname or "") != self.host:
            return False
        if _port(parts) != self.port:
            return False
        path = parts.path or "/"
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def parse_allowed_endpoint(entry: str) -> _Allowed:
    """One ``webpush.allowed_endpoints`` entry; ValueError saying what is wrong with it."""
    parts = urlsplit(entry.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{entry!r} must be a URL prefix such as http://127.0.0.1:8089/")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError(f"{entry!r} must not carry credentials, a query or a fragment")
    port = _port(parts)
    if port is None:
        raise ValueError(f"{entry!r} has an invalid port")
    return _Allowed(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast IP address (text form, IPv4 or IPv6)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                or ip.is_unspecified or ip.is_reserved) and ip.is_global


class EndpointPolicy:
    """Checks endpoints against the rules above and ``webpush.allowed_endpoints``."""

    def __init__(self, allowed: Iterable[str] = (), *,
                 dns_timeout_s: float = DNS_TIMEOUT_S) -> None:
        self._allowed = tuple(parse_allowed_endpoint(entry) for entry in allowed)
        self._dns_timeout_s = dns_timeout_s

    def allowlisted(self, endpoint: str) -> bool:
        """True when an allowlist entry covers ``endpoint`` (no further check then)."""
        parts = urlsplit(endpoint)
        return any(entry.matches(parts) for entry in self._allowed)

    def allowlisted_host(self, host: str, port: int) -> bool:
        """True when an allowlist entry names ``host:port`` (the connector's resolver)."""
        return any(entry.host == host and entry.port == port for entry in self._allowed)

    async def check(self, endpoint: str) -> None:
        """Return when Tocsin may POST to ``endpoint``; else raise :class:`EndpointRefused`.

        Raises OSError (``socket.gaierror``) or TimeoutError when the host name does not
        resolve in time: the caller decides whether that is final.
        """
        parts = urlsplit(endpoint)
        if self.allowlisted(endpoint):
            return
        if parts.scheme != "https":
            raise EndpointRefused(f"push endpoints must use https (got {parts.scheme or 'no'}"
                                  " scheme; see webpush.allowed_endpoints)")
        host = parts.hostname
        if not host:
            raise EndpointRefused("the push endpoint has no host")
        if parts.username is not None or parts.password is not None:
            raise EndpointRefused("the push endpoint must not carry credentials")
        port = _port(parts)
        if port is None:
            raise EndpointRefused("the push endpoint has an invalid port")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            addresses = await self._resolve(host, port)
        else:
            addresses = [host]
        private = [a for a in addresses if not is_public_address(a)]
        if private:
            raise EndpointRefused(f"push endpoint host {host} is not a public address "
                                  f"({private[0]}); see webpush.allowed_endpoints")

    async def _resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._dns_timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise socket.gaierror(f"no address for {host}")
        return sorted({str(info[4][0]) for info in infos})
