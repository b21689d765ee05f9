"""Matchers of an Alertmanager configuration, checked for Tocsin (importer helper).

Tocsin parses matchers exactly like Alertmanager and compiles regexes with RE2, the
engine (and syntax) of Alertmanager's Go ``regexp`` (:mod:`router.rules.regex`), so every
matcher entry and ``match_re`` value is imported verbatim. This module only says when
Alertmanager itself would reject one.
"""

from __future__ import annotations

from router.errors import InvalidMatcher
from router.rules.matchers import Matcher, MatcherParseError, parse_matchers

__all__ = ["InvalidMatcher", "check_matcher_text", "check_regex", "raw_matchers"]


def check_regex(value: str) -> None:
    """Raise InvalidMatcher when Alertmanager rejects the ``match_re`` value ``value``."""
    try:
        Matcher.create("x", "=~", value, match_re=True)
    except MatcherParseError as exc:
        raise InvalidMatcher(exc.message) from None


def check_matcher_text(text: str) -> None:
    """Raise InvalidMatcher when Alertmanager rejects the ``matchers`` entry ``text``."""
    try:
        parse_matchers(text)
    except MatcherParseError as exc:
        raise InvalidMatcher(exc.message) from None


def raw_matchers(text: str) -> list[tuple[str, str, str]]:
    """Name, operator and value of each matcher of one entry (MatcherParseError if bad)."""
    return [(m.name, m.type.value, m.value) for m in parse_matchers(text)]
