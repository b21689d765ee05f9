"""The ``log`` section: level and format."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from router.strict import Strict

__all__ = ["LogConfig"]


class LogConfig(Strict):
    """Log level and format (JSON lines for machines, console for humans)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
