"""The ``costs`` section: what one message costs, for ``tocsin audiences plan``.

Prices are the operator's own (their SNS / e-mail provider contract), in ``currency``;
a price left unset makes the plan say the cost is not known rather than guess. SMS are
billed per segment (part); ``sms_segment_by_prefix`` overrides ``sms_segment`` for the
phone numbers that start with a prefix (the longest prefix wins), since SMS prices
vary by destination country.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from router.strict import Strict

__all__ = ["CostsConfig"]

_PREFIX = re.compile(r"^\+[1-9]\d{0,6}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CostsConfig(Strict):
    """Prices per message (``TOCSIN_COSTS__SMS_SEGMENT=0.0075``)."""

    currency: str = "USD"  # ISO 4217 code, shown with every cost
    sms_segment: float | None = Field(default=None, ge=0)  # one SMS part (segment)
    # Price of one segment to phones starting with a prefix: {"+33": 0.07, "+1": 0.0075}.
    sms_segment_by_prefix: dict[str, float] = Field(default_factory=dict)
    email: float | None = Field(default=None, ge=0)  # one e-mail
    topic_publish: float | None = Field(default=None, ge=0)  # one SNS topic publish
    push: float = Field(default=0.0, ge=0)  # one Web Push message (free at push services)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.match(value):
            raise ValueError("a currency is an ISO 4217 code such as USD or EUR")
        return value

    @field_validator("sms_segment_by_prefix")
    @classmethod
    def _prefixes(cls, value: dict[str, float]) -> dict[str, float]:
        for prefix, price in value.items():
            if not _PREFIX.match(prefix):
                raise ValueError(f"{prefix!r} is not a phone prefix such as +33 or +1")
            if price < 0:
                raise ValueError(f"the price of {prefix} must be >= 0")
        return value

    def sms_segment_price(self, phone: str) -> float | None:
        """The price of one segment to ``phone`` (E.164); None when not configured."""
        best = ""
        for prefix in self.sms_segment_by_prefix:
            if phone.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        return self.sms_segment_by_prefix[best] if best else self.sms_segment
