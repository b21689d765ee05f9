"""The ``webhook`` and ``api`` sections: credentials of the inbound webhook and of the API."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic import model_validator as _model_validator

from router.strict import Strict

__all__ = ["SCOPES", "ApiConfig", "ApiTokenConfig", "BasicAuthConfig", "Scope", "WebhookConfig"]

#: API token scopes; ``admin`` implies every other one (docs/service.md, "API tokens").
Scope = Literal["ingest", "read", "operate", "admin"]
SCOPES: tuple[Scope, ...] = ("ingest", "read", "operate", "admin")
_MIN_TOKEN_CHARS = 16
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class BasicAuthConfig(Strict):
    """HTTP basic credentials Alertmanager sends (``http_config.basic_auth``)."""

    username: str = Field(min_length=1)
    password: SecretStr


class WebhookConfig(Strict):
    """Inbound webhook and HTTP server settings. With no credentials, the webhook is open.

    The connection settings (timeouts, cap, keep-alive) apply to every HTTP route.
    """

    bearer_token: SecretStr | None = None
    basic_auth: BasicAuthConfig | None = None
    # Sized for a group of 10,000 real Alertmanager alerts (measured 200-400 bytes each,
    # 1.6 KiB each allowed): a 413 makes Alertmanager drop the group until its next flush.
    max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    max_alerts: int = Field(default=20_000, ge=1)  # alerts in one request
    max_labels: int = Field(default=128, ge=1)  # labels of one alert
    max_label_bytes: int = Field(default=16_384, ge=64)  # one alert's label names + values
    max_annotation_bytes: int = Field(default=65_536, ge=64)  # one alert's annotations
    header_timeout_s: float = Field(default=10.0, gt=0)  # to send a request's headers
    body_timeout_s: float = Field(default=30.0, gt=0)  # to send a webhook body
    max_connections: int = Field(default=1024, ge=1)  # open HTTP connections, all routes
    keepalive_timeout_s: float = Field(default=75.0, gt=0)  # idle keep-alive connection
    keepalive_max_requests: int = Field(default=1000, ge=1)  # requests per connection
    parse_thread_bytes: int = Field(default=262_144, ge=0)  # larger: parsed off the loop
    max_large_bodies: int = Field(default=4, ge=1)  # such bodies read and parsed at once

    @field_validator("bearer_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be blank (remove the key to disable token auth)")
        return value


class ApiTokenConfig(Strict):
    """One API credential: a name (for logs and 403s), the token, and its scopes.

    The token is given exactly one way: ``token`` (inline), ``token_file`` (a file whose
    content, stripped, is the token: a mounted secret; read at start) or
    ``token_sha256`` (the lowercase hex SHA-256 of the token, so the file holds no
    usable secret). Clients send ``Authorization: Bearer <token>``.
    """

    name: str = Field(min_length=1)
    token: SecretStr | None = None
    token_file: str | None = None
    token_sha256: str | None = None
    scopes: list[Scope] = Field(min_length=1)

    @_model_validator(mode="after")
    def _one_source(self) -> ApiTokenConfig:
        given = [key for key in ("token", "token_file", "token_sha256")
                 if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"api token {self.name!r}: give exactly one of token, "
                             f"token_file, token_sha256 (got {', '.join(given) or 'none'})")
        if self.token is not None and (
                len(self.token.get_secret_value().strip()) < _MIN_TOKEN_CHARS):
            raise ValueError(f"api token {self.name!r}: the token must be at least "
                             f"{_MIN_TOKEN_CHARS} characters")
        if self.token_sha256 is not None and not _SHA256_HEX.match(self.token_sha256):
            raise ValueError(f"api token {self.name!r}: token_sha256 must be 64 lowercase "
                             "hex digits (printf %s TOKEN | sha256sum)")
        if self.token_file is not None:
            self._read_file()
        return self

    def _read_file(self) -> bytes:
        assert self.token_file is not None
        try:
            secret = Path(self.token_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"api token {self.name!r}: cannot read token_file "
                             f"{self.token_file}: {exc.strerror or exc}") from None
        if len(secret) < _MIN_TOKEN_CHARS:
            raise ValueError(f"api token {self.name!r}: token_file {self.token_file} must "
                             f"hold a token of at least {_MIN_TOKEN_CHARS} characters")
        return secret

    def digest(self) -> bytes:
        """The SHA-256 digest of the token (what requests are compared against)."""
        if self.token_sha256 is not None:
            return bytes.fromhex(self.token_sha256)
        if self.token is not None:
            secret = self.token.get_secret_value().strip().encode()
        else:
            secret = self._read_file()
        return hashlib.sha256(secret).digest()


class ApiConfig(Strict):
    """Credentials of the HTTP API, by scope (docs/service.md, "API tokens").

    With no token here and no webhook credentials, every endpoint is open (local
    development; a warning is logged at start). ``public_metrics`` leaves ``/metrics``
    open even when tokens are configured (a scraper without credentials).
    """

    tokens: list[ApiTokenConfig] = Field(default_factory=list)
    public_metrics: bool = False

    @_model_validator(mode="after")
    def _unique_names(self) -> ApiConfig:
        names = [token.name for token in self.tokens]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"api token names must be unique: {', '.join(twice)} repeated")
        return self
