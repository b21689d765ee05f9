"""Shared pieces of the JSON read APIs: query-parameter parsing and time rendering."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from router.errors import BadQuery

__all__ = ["BadQuery", "int_param", "iso"]


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter ``name`` in ``[low, high]``, or ``default`` if absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(name, f"must be an integer from {low} to {high}, got {raw!r}") from None
    if not low <= value <= high:
        raise BadQuery(name, f"must be an integer from {low} to {high}, got {value}")
    return value


def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with a ``Z`` suffix, or ``None``."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
