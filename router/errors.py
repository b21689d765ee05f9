"""The exception tree of Tocsin, in one place.

User errors (a bad rule file, a bad payload, a bad config) are separate from delivery
errors (a channel refused or failed) and from internal bugs (anything else).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXCERPT_CHARS",
    "STORED_ERROR_CHARS",
    "ConfigError",
    "DeliveryError",
    "PayloadError",
    "Problem",
    "RuleError",
    "TocsinError",
    "excerpt",
]

#: Longest excerpt of a provider's answer kept in an error (``last_error``, logs).
EXCERPT_CHARS: Final = 200
#: Longest error text stored for a delivery (several excerpts joined, e.g. Web Push).
STORED_ERROR_CHARS: Final = 1000
_WHITESPACE = re.compile(r"\s+")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A provider's answer cut to one short line: never stored or shown whole.

    Control characters and runs of whitespace become one space; longer than ``limit``
    characters, it is cut with an ellipsis.
    """
    line = "".join(ch if ch.isprintable() else " " for ch in text)
    line = _WHITESPACE.sub(" ", line).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class TocsinError(Exception):
    """Base of every error Tocsin raises on purpose."""


class ConfigError(TocsinError):
    """The service configuration is invalid."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One positioned finding in a user-edited file."""

    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.col:
                where += f":{self.col}"
        return f"{where}: {self.severity}: {self.message}"


class RuleError(TocsinError):
    """A rule set failed validation; ``problems`` holds every positioned error."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PayloadError(TocsinError):
    """An inbound payload cannot be accepted (answered 4xx, or dead-lettered)."""

    def __init__(self, message: str, *, status: int = 400, location: str | None = None) -> None:
        self.status = status
        self.location = location
        super().__init__(message)


class DeliveryError(TocsinError):
    """A channel could not deliver a message.

    ``retryable`` says whether the dispatcher may try again; ``retry_after_s`` carries a
    provider's Retry-After when it gave one. Adapters never retry nor sleep by themselves.
    """

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(message)
