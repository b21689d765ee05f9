"""Phone numbers: validated and normalised to E.164 with ``phonenumbers`` (libphonenumber).

Rule files may write a number the way people do (``+33 6 12 34 56 78``,
``+1 (415) 555-0100``); the contact keeps the E.164 form (``+33612345678``) that SNS
needs. Inline contacts must carry their country code (a leading ``+``): a rule set is
shared by people in several countries, so there is no implicit default region. A contact
source (``contacts_from``) may name a default ``region`` (``FR``): its numbers written
the national way (``06 12 34 56 78``) are read in that region. Numbers that are
well-formed but not assigned in the numbering plan (``+33 1``, too short, unknown
prefixes) are rejected rather than sent to and billed.

Speed (a customer list holds 100,000 numbers): a number already in E.164, or national
digits of a region with a plain national prefix, skips ``phonenumbers.parse`` and is
checked against the region's number patterns directly, compiled once into one regular
expression per region; only what that check refuses goes through libphonenumber (for
its verdict and its wording). Results are cached by ``(raw, region)``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

__all__ = ["normalise_phone", "phone_or_error"]

#: The descriptions of assigned numbers (libphonenumber's number types, UNKNOWN aside).
_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
          "personal_number", "voip", "pager", "uan", "voicemail")
_SEPARATORS = re.compile(r"[\s.\-()/]")
_DIGITS = re.compile(r"^\d{2,17}$")


def normalise_phone(raw: str, region: str | None = None) -> str:
    """``raw`` in E.164, or ValueError saying why it is not a usable phone number.

    ``region`` (ISO 3166 code such as ``FR``): the country of numbers written without
    ``+``; without it such numbers are refused.
    """
    number, error = phone_or_error(raw, region)
    if number is None:
        raise ValueError(error)
    return number


@lru_cache(maxsize=8192)
def phone_or_error(raw: str, region: str | None = None) -> tuple[str | None, str]:
    """``(E.164, "")`` or ``(None, why)``: :func:`normalise_phone` without the exception
    (a source's rows are many; cached by ``(raw, region)``)."""
    text = raw.strip()
    fast = _fast(text, region)
    if fast is not None:
        return fast, ""
    if not text.startswith("+") and region is None:
        return None, (f"invalid phone number '{raw}': start with '+' and the country code, "
                      "such as +33612345678")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return None, f"invalid phone number '{raw}': {exc._msg}"
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or region or "unknown country"
        return None, (f"invalid phone number '{raw}': not a valid number for {where} "
                      "(check the digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), ""


def _fast(text: str, region: str | None) -> str | None:
    """E.164 when ``text`` is plainly a valid number (no parse), else None (not decided)."""
    if text.startswith("+"):
        digits = _SEPARATORS.sub("", text[1:])
        if not _DIGITS.match(digits):
            return None
        for size in (1, 2, 3):
            code = int(digits[:size])
            if code in COUNTRY_CODE_TO_REGION_CODE:
                national = digits[size:]
                return f"+{digits}" if _assigned(code, national) else None
        return None
    if region is None:
        return None
    prefix = _plain_prefix(region)
    if prefix is None:
        return None
    digits = _SEPARATORS.sub("", text)
    if not _DIGITS.match(digits) or not digits.startswith(prefix) or len(digits) <= len(prefix):
        return None
    code, national = _country_code(region), digits[len(prefix):]
    return f"+{code}{national}" if code and _assigned(code, national) else None


@lru_cache(maxsize=512)
def _plain_prefix(region: str) -> str | None:
    """The region's national prefix when it is removed as is (``0`` in FR), else None."""
    meta = PhoneMetadata.metadata_for_region(region.upper(), None)
    if meta is None or not meta.national_prefix or meta.national_prefix_transform_rule:
        return None
    if meta.national_prefix_for_parsing not in (None, meta.national_prefix):
        return None
    return str(meta.national_prefix)


@lru_cache(maxsize=512)
def _country_code(region: str) -> int:
    meta = PhoneMetadata.metadata_for_region(region.upper(), None)
    return int(meta.country_code) if meta is not None and meta.country_code else 0


@lru_cache(maxsize=512)
def _patterns(code: int) -> tuple[tuple[frozenset[int], re.Pattern[str]], ...]:
    """Per region of country ``code``: the possible lengths and one expression matching
    every assigned number type."""
    out = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(code, ()):
        meta = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if meta is None or meta.general_desc is None:
            continue
        general = meta.general_desc
        if not general.national_number_pattern:
            continue
        alternatives = []
        for name in _TYPES:
            desc = getattr(meta, name)
            if desc is None or not desc.national_number_pattern:
                continue
            lengths = desc.possible_length or general.possible_length
            if lengths == (-1,):
                continue
            alternatives.append(f"(?:{desc.national_number_pattern})")
        if not alternatives:
            continue
        pattern = re.compile(f"(?:{general.national_number_pattern})")
        types = re.compile("|".join(alternatives))
        lengths = frozenset(general.possible_length or ())
        out.append((lengths, re.compile(f"(?=(?:{pattern.pattern})$)(?:{types.pattern})$")))
    return tuple(out)


def _assigned(code: int, national: str) -> bool:
    """Whether ``national`` is an assigned number of country ``code`` (some region's
    possible length and one of its number types)."""
    if not national or (national.startswith("0") and code not in _LEADING_ZERO):
        return False
    return any(len(national) in lengths and rx.match(national)
               for lengths, rx in _patterns(code))


#: Country codes whose national numbers may start with 0 (Italy, its neighbours).
_LEADING_ZERO = frozenset({39, 379})
