"""The ``smtp`` section: the server the e-mail channel submits to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic import model_validator as _model_validator

from router.strict import Strict

__all__ = ["SmtpConfig"]


class SmtpConfig(Strict):
    """The SMTP server the email channel submits to."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    from_address: str = "tocsin@localhost"
    timeout_s: float = Field(default=10.0, gt=0)
    ca_file: str | None = None  # PEM bundle to trust for starttls/tls (default: system CAs)
    pool_size: int = Field(default=4, ge=0)  # idle connections kept for reuse (0: none)
    pool_idle_s: float = Field(default=30.0, gt=0)  # how long an idle connection is kept

    @_model_validator(mode="after")
    def _auth_pair(self) -> SmtpConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp.username and smtp.password must be given together")
        return self
