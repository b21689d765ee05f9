"""Durations written like Alertmanager's (``30s``, ``5m``, ``4h``, ``1h30m``, ``2d``, ``1w``).

Alertmanager's ``model.Duration`` grammar: one or more ``<integer><unit>`` parts in
decreasing unit order, units ``y`` (365 days), ``w``, ``d``, ``h``, ``m``, ``s``, ``ms``;
``0`` alone means zero. Parsing is strict: ``5 m``, ``1.5h`` and ``5`` are errors.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration_s"]

_UNITS_S = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1,
            "ms": 0.001}
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


def parse_duration_s(text: str) -> float:
    """Seconds in an Alertmanager duration; ValueError with a readable message if invalid."""
    value = text.strip()
    if value == "0":
        return 0.0
    match = _DURATION.match(value)
    if not value or match is None or not any(match.groups()):
        raise ValueError(
            f"invalid duration '{text}': expected a number and a unit such as 30s, 5m, 4h, "
            "1h30m or 2d (units y, w, d, h, m, s, ms)"
        )
    total = 0.0
    for amount, unit in zip(match.groups(), ("y", "w", "d", "h", "m", "s", "ms"), strict=True):
        if amount is not None:
            total += int(amount) * _UNITS_S[unit]
    return total


def _to_seconds(value: object) -> object:
    if isinstance(value, str):
        return parse_duration_s(value)
    return value


#: A pydantic field type: an Alertmanager duration string, validated, stored as seconds.
Duration = Annotated[float, BeforeValidator(_to_seconds)]
