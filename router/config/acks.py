"""The ``acks`` section: the signed acknowledgement links of e-mail and push notices.

Links are on when a key is given: ``link_key`` (inline) or ``link_key_file`` (a file
whose content, stripped, is the key: a mounted secret; read at start), never both.
``public_url`` is then required: the base URL people reach Tocsin at from their mail
client or phone (``https://tocsin.example.com``), which is rarely the ``listen``
address. ``link_ttl`` is how long a link stays valid (an Alertmanager duration such as
``24h``; a bare number is seconds).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from router.rules.durations import Duration
from router.strict import Strict

__all__ = ["MIN_LINK_KEY_CHARS", "AcksConfig"]

#: A link key shorter than this is refused (HMAC-SHA256: 32 characters or more).
MIN_LINK_KEY_CHARS = 32
_KEY_HINT = "generate one with: openssl rand -base64 32"


class AcksConfig(Strict):
    """Acknowledgement links: their HMAC key, lifetime and the URL they point to."""

    link_key: SecretStr | None = None
    link_key_file: str | None = None
    link_ttl: Duration = Field(default=86400.0, gt=0)  # seconds once validated
    public_url: str | None = None  # e.g. https://tocsin.example.com (links: <url>/ack/...)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as "
                             "https://tocsin.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must have no query string or fragment (links append /ack/...)")
        return value.strip().rstrip("/")

    @model_validator(mode="after")
    def _key_and_url(self) -> AcksConfig:
        if self.link_key is not None and self.link_key_file is not None:
            raise ValueError("give acks.link_key or acks.link_key_file, not both")
        if self.link_key is not None:
            _check_key(self.link_key.get_secret_value().strip().encode(), "acks.link_key")
        if self.link_key_file is not None:
            self._read_key_file()
        if self.enabled and self.public_url is None:
            raise ValueError("acks.public_url is required when a link key is set: the base "
                             "URL people open the links at, such as "
                             "https://tocsin.example.com")
        return self

    @property
    def enabled(self) -> bool:
        """True when a link key is configured (acknowledgement links are on)."""
        return self.link_key is not None or self.link_key_file is not None

    def key(self) -> bytes | None:
        """The HMAC key of the links (None: links off). Never log it."""
        if self.link_key is not None:
            return self.link_key.get_secret_value().strip().encode()
        if self.link_key_file is not None:
            return self._read_key_file()
        return None

    def _read_key_file(self) -> bytes:
        assert self.link_key_file is not None
        try:
            key = Path(self.link_key_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"cannot read acks.link_key_file {self.link_key_file}: "
                             f"{exc.strerror or exc}") from None
        _check_key(key, f"acks.link_key_file {self.link_key_file}")
        return key


def _check_key(key: bytes, where: str) -> None:
    if len(key) < MIN_LINK_KEY_CHARS:
        raise ValueError(f"{where} must hold a key of at least {MIN_LINK_KEY_CHARS} "
                         f"characters ({_KEY_HINT})")
