"""Phone numbers: validated and normalised to E.164 with ``phonenumbers`` (libphonenumber).

Rule files may write a number the way people do (``+33 6 12 34 56 78``,
``+1 (415) 555-0100``); the contact keeps the E.164 form (``+33612345678``) that SNS
needs. A number must carry its country code (a leading ``+``): a rule set is shared by
people in several countries, so there is no implicit default region. Numbers that are
well-formed but not assigned in the numbering plan (``+33 1``, too short, unknown
prefixes) are rejected rather than sent to and billed.
"""

from __future__ import annotations

import phonenumbers

__all__ = ["normalise_phone"]


def normalise_phone(raw: str) -> str:
    """``raw`` in E.164, or ValueError saying why it is not a usable phone number."""
    text = raw.strip()
    if not text.startswith("+"):
        raise ValueError(f"invalid phone number '{raw}': start with '+' and the country "
                         "code, such as +33612345678")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"invalid phone number '{raw}': {exc._msg}") from None
    if not phonenumbers.is_valid_number(number):
        region = phonenumbers.region_code_for_number(number) or "unknown country"
        raise ValueError(f"invalid phone number '{raw}': not a valid number for "
                         f"{region} (check the digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
