"""Push endpoints: https on a public host, or listed in webpush.allowed_endpoints."""

from __future__ import annotations

import pytest

from router.config import load_config
from router.errors import ConfigError
from router.push_endpoints import (
    EndpointPolicy,
    EndpointRefused,
    is_public_address,
    parse_allowed_endpoint,
)
from router.push_keys import generate_vapid_keys


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "::",
    "fe80::1", "fe80::1%eth0", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2001:db8::1", "not-an-ip",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    """Loopback, private, link-local, multicast, unspecified, reserved: not public."""
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888",
                                     "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    """Globally routable unicast addresses are public."""
    assert is_public_address(address) is True


@pytest.mark.parametrize(("endpoint", "why"), [
    ("http://8.8.8.8/push/x", "https"),
    ("https://127.0.0.1:8443/push/x", "not a public address"),
    ("https://[::1]/push/x", "not a public address"),
    ("https://169.254.169.254/latest/meta-data", "not a public address"),
    ("https://localhost:8443/push/x", "not a public address"),  # resolved: 127.0.0.1
    ("https://user:pw@8.8.8.8/push/x", "credentials"),
    ("https:///push/x", "no host"),
])
async def test_policy_refuses(endpoint: str, why: str) -> None:
    """Plain http, IP literals and names of non-public addresses are refused, saying why."""
    with pytest.raises(EndpointRefused, match=why):
        await EndpointPolicy().check(endpoint)


async def test_public_ip_literal_passes_without_dns() -> None:
    """An https endpoint on a public IP literal is allowed."""
    await EndpointPolicy().check("https://8.8.8.8/push/abc")


@pytest.mark.parametrize(("endpoint", "allowed"), [
    ("http://127.0.0.1:8089/push/abc", True),
    ("http://127.0.0.1:8089", True),
    ("http://127.0.0.1:8090/push/abc", False),  # another port
    ("https://127.0.0.1:8089/push/abc", False),  # another scheme
    ("http://127.0.0.1:8089@evil.example/push", False),  # the host is evil.example
    ("http://127.0.0.2:8089/push/abc", False),
])
def test_allowlist_matches_scheme_host_and_port(endpoint: str, allowed: bool) -> None:
    """An allowlist entry covers its exact scheme, host and port only."""
    assert EndpointPolicy(["http://127.0.0.1:8089/"]).allowlisted(endpoint) is allowed


@pytest.mark.parametrize(("endpoint", "allowed"), [
    ("https://push.example.net/wp/abc", True), ("https://push.example.net/wp", True),
    ("https://push.example.net/wpx/abc", False), ("https://push.example.net/", False),
    ("https://push.example.net:443/wp/abc", True),
])
def test_allowlist_path_prefix_is_by_segment(endpoint: str, allowed: bool) -> None:
    """A path in an entry matches whole segments (/wp covers /wp/abc, not /wpx)."""
    assert EndpointPolicy(["https://push.example.net/wp/"]).allowlisted(endpoint) is allowed


async def test_allowlisted_local_endpoint_passes() -> None:
    """The local demo push service on 127.0.0.1 passes when allowlisted."""
    await EndpointPolicy(["http://127.0.0.1:8089/"]).check("http://127.0.0.1:8089/push/a")


@pytest.mark.parametrize("entry", ["127.0.0.1:8089", "ftp://x/", "http://u:p@h/",
                                   "http://h/?q=1", "http://h:99999/"])
def test_bad_allowlist_entries(entry: str) -> None:
    """An entry that is not a plain http(s) URL prefix is a config error."""
    with pytest.raises(ValueError, match=r"URL prefix|credentials|port"):
        parse_allowed_endpoint(entry)


def test_bad_allowlist_entry_is_a_config_error() -> None:
    """webpush.allowed_endpoints is validated when the config loads, naming the key."""
    environ = {"TOCSIN_WEBPUSH__VAPID_PRIVATE_KEY": generate_vapid_keys()[0],
               "TOCSIN_WEBPUSH__VAPID_SUBJECT": "mailto:ops@example.com",
               "TOCSIN_WEBPUSH__API_TOKEN": "0123456789abcdef",
               "TOCSIN_WEBPUSH__ALLOWED_ENDPOINTS": "127.0.0.1:8089"}
    with pytest.raises(ConfigError, match=r"webpush\.allowed_endpoints: .*URL prefix"):
        load_config(None, environ)
