"""The ``acks`` section: link key (inline, file, env), TTL, public URL, secrets kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.config import AcksConfig, ServiceConfig, load_config
from router.errors import ConfigError

KEY = "a-link-key-of-at-least-32-characters-0123"


def test_links_are_off_by_default() -> None:
    """No key: links off, TTL 24 h, no public URL needed."""
    acks = ServiceConfig().acks
    assert (acks.enabled, acks.key(), acks.link_ttl, acks.public_url) == (
        False, None, 86400.0, None)


def test_env_key_ttl_and_url() -> None:
    """TOCSIN_ACKS__LINK_KEY / __LINK_TTL / __PUBLIC_URL; the URL loses its trailing /."""
    config = load_config(None, {"TOCSIN_ACKS__LINK_KEY": KEY, "TOCSIN_ACKS__LINK_TTL": "90m",
                                "TOCSIN_ACKS__PUBLIC_URL": "https://tocsin.example.com/"})
    assert config.acks.key() == KEY.encode()
    assert config.acks.link_ttl == 5400.0
    assert config.acks.public_url == "https://tocsin.example.com"
    assert load_config(None, {"TOCSIN_ACKS__LINK_TTL": "600"}).acks.link_ttl == 600.0


def test_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    """acks.link_key_file: a mounted secret, its content stripped."""
    secret = tmp_path / "link.key"
    secret.write_text(KEY + "\n")
    acks = AcksConfig(link_key_file=str(secret), public_url="http://127.0.0.1:9095")
    assert acks.enabled and acks.key() == KEY.encode()


@pytest.mark.parametrize(("acks", "words"), [
    ({"link_key": KEY}, "acks.public_url is required when a link key is set"),
    ({"link_key": "short", "public_url": "https://t.example"}, "at least 32 characters"),
    ({"link_key": KEY, "link_key_file": "/x", "public_url": "https://t.example"},
     "not both"),
    ({"link_key_file": "/nonexistent/key", "public_url": "https://t.example"},
     "cannot read acks.link_key_file /nonexistent/key"),
    ({"public_url": "tocsin.example.com"}, "must be an http:// or https:// URL"),
    ({"public_url": "https://t.example/?a=1"}, "no query string"),
    ({"link_ttl": "1.5h"}, "invalid duration '1.5h'"),
    ({"link_ttl": "0s"}, "must be > 0"),
    ({"link_keys": KEY}, "unknown key 'acks.link_keys' — did you mean 'link_key'?"),
])
def test_errors_are_clear_and_never_show_the_key(tmp_path: Path, acks: dict[str, str],
                                                 words: str) -> None:
    """Each mistake is one readable line; the key's value appears in none."""
    path = tmp_path / "tocsin.yaml"
    lines = ["acks:", *(f"  {k}: {v!r}" for k, v in acks.items())]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert words in str(caught.value)
    assert KEY not in str(caught.value) and "short" not in str(caught.value).replace(
        "shorter", "")


def test_key_is_masked_in_repr_and_dumps() -> None:
    """The key is a SecretStr: not in repr, str or a JSON dump of the config."""
    config = load_config(None, {"TOCSIN_ACKS__LINK_KEY": KEY,
                                "TOCSIN_ACKS__PUBLIC_URL": "https://t.example"})
    for text in (repr(config), str(config), config.model_dump_json()):
        assert KEY not in text
    assert "**********" in repr(config.acks)


def test_a_wrong_type_for_the_key_does_not_echo_it(tmp_path: Path) -> None:
    """A key of the wrong type (a list) is refused without repeating its value."""
    path = tmp_path / "tocsin.yaml"
    path.write_text(f"acks:\n  link_key: [{KEY}]\n  public_url: https://t.example\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "acks.link_key" in str(caught.value) and ":2:" in str(caught.value)
    assert KEY not in str(caught.value)


def test_cli_token_variable_is_not_a_config_key() -> None:
    """TOCSIN_API_TOKEN (tocsin incidents ack) is not refused as an unknown key."""
    assert load_config(None, {"TOCSIN_API_TOKEN": "whatever"}).acks.enabled is False
