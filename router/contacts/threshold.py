"""How many bad rows a contact source may have before it is refused (``max_invalid``).

A threshold is a count (``10``) or a share of the rows (``2%``). The bad rows are the
invalid ones (a field dropped, or the row skipped) and the duplicates. Default:
:data:`DEFAULT_MAX_INVALID`, 1 % of the rows: a broken export (wrong separator, a lost
column) is refused and the previous list stays in force, while a few mistyped numbers in
a customer base are reported and let through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_INVALID", "Threshold", "parse_threshold"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """``count`` bad rows, or ``percent`` of the rows."""

    count: int | None = None
    percent: float | None = None

    def limit(self, rows: int) -> int:
        """The most bad rows allowed among ``rows``."""
        if self.count is not None:
            return self.count
        return math.floor(rows * (self.percent or 0.0) / 100 + 1e-9)

    def exceeded(self, rows: int, bad: int) -> bool:
        """Whether ``bad`` rows among ``rows`` pass this threshold."""
        return bad > self.limit(rows)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{self.percent:g}%"


def parse_threshold(text: str) -> Threshold:
    """``"10"`` or ``"2.5%"``; ValueError otherwise."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            percent = float(raw[:-1])
            if not 0 <= percent <= 100 or math.isnan(percent):
                raise ValueError
            return Threshold(percent=percent)
        count = int(raw)
        if count < 0:
            raise ValueError
        return Threshold(count=count)
    except ValueError:
        raise ValueError(f"invalid max_invalid '{raw}': a number of rows (10) or a "
                         "percentage of them (2%)") from None


DEFAULT_MAX_INVALID = Threshold(percent=1.0)
