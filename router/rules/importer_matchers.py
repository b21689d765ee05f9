"""Matchers of an Alertmanager configuration, made equivalent for Tocsin (importer helper).

Tocsin parses matchers exactly like Alertmanager, but compiles regexes with Python's
``re``: each regex value goes through :func:`router.rules.importer_re2.translate_re2`,
and a matcher whose regex had to be rewritten is written back in canonical form.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from router.matchers import Matcher, MatcherParseError, parse_matchers
from router.rules.importer_re2 import Re2Invalid, Re2Untranslatable, translate_re2

__all__ = ["ConvertedMatchers", "ConvertedRegex", "InvalidMatcher", "convert_matcher_text",
           "convert_regex", "raw_matchers"]

_CLASSIC = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.S)


def _parse(text: str) -> list[tuple[str, str, str]]:
    # Tocsin's parser compiles the RE2 text with Python's re, which may warn about it
    # ("Possible nested set" for [[:alpha:]]); the value is translated afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return [(m.name, m.type.value, m.value) for m in parse_matchers(text)]


class InvalidMatcher(ValueError):
    """Alertmanager itself would reject this matcher or regex."""


@dataclass(frozen=True, slots=True)
class ConvertedRegex:
    """A regex for Tocsin: ``value`` (maybe rewritten), the rewrite notes, or why not."""

    value: str
    notes: tuple[str, ...] = ()
    untranslatable: str | None = None
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConvertedMatchers:
    """One ``matchers`` entry for Tocsin: the entries to write, and what changed."""

    entries: tuple[str, ...]
    notes: tuple[str, ...] = ()
    untranslatable: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()


def convert_regex(value: str) -> ConvertedRegex:
    """Translate one RE2 regex value; raise InvalidMatcher when RE2 rejects it."""
    try:
        tr = translate_re2(value)
    except Re2Invalid as exc:
        raise InvalidMatcher(f"invalid regular expression {value!r}: {exc}") from None
    except Re2Untranslatable as exc:
        return ConvertedRegex(value, untranslatable=f"regex {value!r}: {exc}")
    try:
        Matcher.create("x", "=~", tr.pattern)
    except MatcherParseError as exc:
        raise InvalidMatcher(exc.message) from None
    return ConvertedRegex(tr.pattern, tr.notes, caveats=tr.caveats)


def _split_classic(text: str) -> list[tuple[str, str, str]]:
    """Name, operator and raw value of each matcher, without compiling any regex."""
    s = text.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    tokens: list[str] = []
    buf: list[str] = []
    inside = escaped = False
    for ch in s:
        if ch == "," and not inside:
            tokens.append("".join(buf))
            buf = []
            continue
        if ch == '"' and not escaped:
            inside = not inside
        escaped = ch == "\\" and not escaped
        buf.append(ch)
    if "".join(buf).strip():
        tokens.append("".join(buf))
    out = []
    for tok in tokens:
        m = _CLASSIC.match(tok)
        if m is None:
            raise ValueError(tok)
        raw = m.group(3)
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r'\\(["\\n])', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                         raw[1:-1])
        out.append((m.group(1), m.group(2), raw))
    return out


def convert_matcher_text(text: str) -> ConvertedMatchers:
    """Convert one ``matchers`` entry; raise InvalidMatcher when Alertmanager rejects it."""
    try:
        parsed = _parse(text)
        first_error: MatcherParseError | None = None
    except MatcherParseError as exc:
        # Maybe only Python's re rejects a valid RE2 regex: split without compiling.
        first_error = exc
        try:
            parsed = _split_classic(text)
        except ValueError:
            raise InvalidMatcher(exc.message) from None
    notes: list[str] = []
    caveats: list[str] = []
    bad: list[str] = []
    rebuilt: list[str] = []
    for name, op, value in parsed:
        if op in ("=~", "!~"):
            conv = convert_regex(value)
            notes.extend(n for n in conv.notes if n not in notes)
            caveats.extend(c for c in conv.caveats if c not in caveats)
            if conv.untranslatable:
                bad.append(conv.untranslatable)
            value = conv.value
        if not bad:
            try:
                rebuilt.append(str(Matcher.create(name, op, value)))
            except MatcherParseError as exc:
                raise InvalidMatcher(exc.message) from None
    if bad:
        return ConvertedMatchers((text,), (), tuple(bad))
    if not notes and first_error is None:
        return ConvertedMatchers((text,), caveats=tuple(caveats))
    return ConvertedMatchers(tuple(rebuilt), tuple(notes), caveats=tuple(caveats))


def raw_matchers(text: str) -> list[tuple[str, str, str]]:
    """Name, operator and value of each matcher of one entry, regexes not compiled.

    Uses Tocsin's parser when it accepts the entry, else a classic-syntax split (for
    RE2 regexes Python's ``re`` rejects). Raises ValueError when neither can parse it.
    """
    try:
        return _parse(text)
    except MatcherParseError:
        return _split_classic(text)
