"""Checks of values a person writes about a contact: e-mail addresses, locale tags, IANA
time zones (phone numbers: :mod:`router.phones`).

One implementation for inline contacts (``router/rules/schema.py``), contact sources
(``router/contacts/``) and time intervals. Each check returns the value or raises
ValueError with the words of the error; they are cached, since a customer list repeats
the same few locales and time zones many thousand times.
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["check_email", "check_locale", "check_timezone"]

_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+$")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def check_email(value: str) -> str:
    """Return ``value`` if it looks like ``name@domain.tld``."""
    if not _EMAIL.match(value):
        raise ValueError(f"invalid email address '{value}': expected name@domain.tld")
    return value


def check_locale(value: str) -> str:
    """Return ``value`` if it looks like a locale tag (``en``, ``fr``, ``fr-CA``)."""
    if not _LOCALE.match(value):
        raise ValueError(f"invalid locale '{value}': expected a tag such as 'en', 'fr' or 'fr-CA'")
    return value


@lru_cache(maxsize=1024)
def _known_zone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def check_timezone(value: str) -> str:
    """Return ``value`` if it is an IANA time zone name, else raise ValueError."""
    if not _known_zone(value):
        raise ValueError(
            f"unknown time zone '{value}': use an IANA name such as 'UTC' or 'Europe/Paris'"
        )
    return value
