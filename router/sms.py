"""SMS text handling: encoding detection, segment counting, truncation, transliteration.

An SMS is sent either in the GSM 03.38 7-bit alphabet (GSM-7: 160 characters in one
message, 153 per part once concatenated) or, as soon as one character is outside it, in
UCS-2 (70 UTF-16 code units, 67 per part). Characters of the GSM-7 *extension table*
(``^ { } \\ [ ~ ] | €`` and form feed) are sent as an escape plus a character and so
count twice; a UCS-2 character outside the Basic Multilingual Plane (most emoji) is a
surrogate pair and also counts twice. Neither an escape pair nor a surrogate pair is
ever split across two parts, so counting is exact rather than a division.

Providers bill per part (segment): one stray "’" or "«" turns a 160-character GSM-7
message into a 3-part UCS-2 one. :func:`to_gsm7` folds such characters (typographic
quotes, dashes, the narrow no-break space French puts before ":", accents that GSM-7
lacks) into GSM-7; letters GSM-7 has (é è à ù ì ò Ä Ö Ñ Ü ...) are kept.

:func:`fit` applies an :class:`SmsPolicy` (maximum parts, overflow behaviour,
transliteration) and is what the SMS channel and ``tocsin rules test`` use.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from router.errors import UserError

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Encoding",
    "SmsInfo",
    "SmsOverflowError",
    "SmsPolicy",
    "analyse",
    "encoding_of",
    "fit",
    "segment_count",
    "split_segments",
    "to_gsm7",
    "truncate",
]

#: The GSM 03.38 default alphabet (one septet each); index 0x1B (escape) is excluded.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The GSM 03.38 extension table: escape + character, two septets each.
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

_GSM7_SINGLE: Final = 160
_GSM7_MULTI: Final = 153
_UCS2_SINGLE: Final = 70
_UCS2_MULTI: Final = 67


class Encoding(StrEnum):
    """How an SMS is encoded on the air."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsInfo:
    """What a text costs as an SMS."""

    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int  # parts billed (0 for the empty text)
    chars: int  # Python characters (code points)


class SmsOverflowError(UserError):
    """The text needs more parts than the policy allows and the policy says "fail"."""

    def __init__(self, info: SmsInfo, max_segments: int) -> None:
        self.info = info
        self.max_segments = max_segments
        super().__init__(
            f"SMS needs {info.segments} parts ({info.encoding}, {info.units} units) but at "
            f"most {max_segments} are allowed"
        )


@dataclass(frozen=True, slots=True)
class SmsPolicy:
    """How to fit a rendered text into an SMS budget.

    ``max_segments`` caps the parts billed per message; ``overflow`` says what happens
    beyond it: ``truncate`` (cut at a word boundary, add an ellipsis) or ``fail`` (raise
    :class:`SmsOverflowError`: the rule check or the delivery fails). ``transliterate``
    folds the text into GSM-7 first (see :func:`to_gsm7`).
    """

    max_segments: int = 3
    overflow: Literal["truncate", "fail"] = "truncate"
    transliterate: bool = False

    def __post_init__(self) -> None:
        if self.max_segments < 1:
            raise ValueError("max_segments must be >= 1")
        if self.overflow not in ("truncate", "fail"):
            raise ValueError(f"overflow must be truncate or fail, not {self.overflow!r}")


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            return Encoding.UCS2
    return Encoding.GSM7


def _unit_cost(char: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def _limits(encoding: Encoding) -> tuple[int, int]:
    if encoding is Encoding.GSM7:
        return _GSM7_SINGLE, _GSM7_MULTI
    return _UCS2_SINGLE, _UCS2_MULTI


def split_segments(text: str, encoding: Encoding | None = None) -> list[str]:
    """The parts ``text`` is sent as (pairs are never split across parts)."""
    enc = encoding if encoding is not None else encoding_of(text)
    single, multi = _limits(enc)
    costs = [_unit_cost(c, enc) for c in text]
    if sum(costs) <= single:
        return [text] if text else []
    parts: list[str] = []
    start = 0
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > multi:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return parts


def analyse(text: str) -> SmsInfo:
    """Encoding, units, parts and characters of ``text`` as one SMS message."""
    enc = encoding_of(text)
    units = sum(_unit_cost(c, enc) for c in text)
    return SmsInfo(encoding=enc, units=units, segments=len(split_segments(text, enc)),
                   chars=len(text))


def segment_count(text: str) -> int:
    """How many parts ``text`` is billed as."""
    return analyse(text).segments


def truncate(text: str, max_segments: int) -> str:
    """``text`` cut to at most ``max_segments`` parts, at a word boundary, with an ellipsis.

    The ellipsis is ``...`` in GSM-7 (which has no "…") and ``…`` in UCS-2. A text that
    already fits is returned unchanged; a single word longer than the budget is cut
    inside the word.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be >= 1")
    if segment_count(text) <= max_segments:
        return text
    enc = encoding_of(text)
    ellipsis = "..." if enc is Encoding.GSM7 else "…"
    single, multi = _limits(enc)
    budget = single if max_segments == 1 else multi * max_segments
    budget -= sum(_unit_cost(c, enc) for c in ellipsis)
    used = 0
    cut = 0
    for index, char in enumerate(text):
        cost = _unit_cost(char, enc)
        if used + cost > budget:
            break
        used += cost
        cut = index + 1
    head = text[:cut]
    if cut < len(text) and not text[cut].isspace():
        boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if boundary > 0:
            head = head[:boundary]
    head = head.rstrip()
    result = head + ellipsis
    # Pair placement at part borders can cost a few units: shorten until it fits.
    while head and segment_count(result) > max_segments:
        head = head[:-1].rstrip()
        result = head + ellipsis
    return result


# --------------------------------------------------------------------------- transliteration

#: Characters GSM-7 lacks, with what to send instead (checked before accent folding).
_REPLACEMENTS: Final[dict[str, str]] = {
    "\u00a0": " ", "\u202f": " ", "\u2009": " ", "\u2007": " ", "\u2002": " ",
    "\u2003": " ",
    "«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "´": "'", "`": "'",
    "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-",
    "…": "...", "•": "*", "·": ".",
    "œ": "oe", "Œ": "OE", "ç": "c",
    "°": "o", "²": "2", "³": "3", "×": "x", "÷": "/",
    "\t": " ",
}


def to_gsm7(text: str, *, replacement: str = "?") -> str:
    """Fold ``text`` into the GSM-7 alphabet.

    Characters already in GSM-7 stay (é, è, à, ù, Ä, ñ, €, ...); typographic punctuation
    and spaces get their ASCII equivalent; other accented letters lose their accent
    (ê → e, ô → o, ï → i, ç → c); anything left (emoji, CJK) becomes ``replacement``.
    """
    out: list[str] = []
    for char in text:
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            out.append(char)
            continue
        mapped = _REPLACEMENTS.get(char)
        if mapped is not None:
            out.append(mapped)
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", char)
                       if not unicodedata.combining(c))
        if base and all(c in GSM7_BASIC for c in base):
            out.append(base)
        elif unicodedata.category(char).startswith("Z"):
            out.append(" ")
        else:
            out.append(replacement)
    return "".join(out)


def fit(text: str, policy: SmsPolicy) -> tuple[str, SmsInfo]:
    """Apply ``policy`` to ``text``: the text to send and what it costs.

    Raises SmsOverflowError when it needs more than ``policy.max_segments`` parts and
    ``policy.overflow`` is ``fail``.
    """
    body = to_gsm7(text) if policy.transliterate else text
    info = analyse(body)
    if info.segments <= policy.max_segments:
        return body, info
    if policy.overflow == "fail":
        raise SmsOverflowError(info, policy.max_segments)
    body = truncate(body, policy.max_segments)
    return body, analyse(body)
