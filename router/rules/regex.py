"""Alertmanager's regular expressions: Go ``regexp`` syntax and semantics, on RE2.

Alertmanager compiles every regex matcher value ``v`` with Go's ``regexp`` as
``^(?:v)$`` and tests a label value with ``MatchString``. Go's ``regexp`` is a port of
RE2, so Tocsin compiles the same text with RE2 itself (the ``google-re2`` package):
the syntax is Alertmanager's (``\\d`` ``\\w`` ``\\s`` ``\\b`` are ASCII, POSIX classes
such as ``[[:alpha:]]``, Unicode classes ``\\pL`` ``\\p{Greek}``, ``\\Q...\\E``, inline
flags ``(?i)`` ``(?s)`` ``(?m)`` ``(?U)`` anywhere, ``.`` not matching ``\\n``), and
matching takes time linear in the label value whatever the expression: there is no
back-tracking, so ``(a+)+b`` against a long run of ``a`` costs microseconds. Labels are
external input; a regex from a rule file must not let one alert stall routing.

What RE2 refuses, Alertmanager refuses too (look-arounds, back-references, atomic groups,
possessive quantifiers, repeat counts above 1000); errors are raised as
:class:`RegexError` carrying Go's error code and argument, so Tocsin can print the
message Alertmanager prints (``error parsing regexp: missing closing ]: `[0-9)$```).
C++ RE2 accepts ``\\C`` (any byte), Go rejects it: so does Tocsin.

A label value holding a lone surrogate (possible after JSON ``\\ud800``) is matched as
Go sees it after decoding: with U+FFFD in its place.

Only this module knows the engine. It uses ``re2._re2`` (the package's pybind11 layer)
rather than the ``re``-like wrapper, which builds a match object (and maps byte offsets
back to characters) for every call: routing only needs "does it match".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, final

from re2 import _re2

from router.errors import RegexError

__all__ = ["Regex", "RegexError", "compile_anchored", "compile_union"]

_OPTIONS: Final[Any] = _re2.RE2.Options()
_OPTIONS.log_errors = False  # errors come back as values; nothing on stderr
_OPTIONS.never_capture = True  # only "does it match" is asked: no submatch tracking
_UNANCHORED: Final[Any] = _re2.RE2.Anchor.UNANCHORED
_NO_MATCH: Final = (-1, -1)
_SURROGATE = re.compile("[\ud800-\udfff]")

#: RE2's error code texts and Go's (``regexp/syntax.ErrorCode``) for the same error.
_GO_CODES: Final = {
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid UTF-8": "invalid UTF-8",
    "invalid named capture group": "invalid named capture",
    "unexpected error": "regexp/syntax: internal error",
}
_BACKREF = re.compile(r"\\[1-9]")
_POSSESSIVE = re.compile(r"[*+?}]\+$")
_RE2_SYNTAX = "Alertmanager's regexes use RE2 syntax"


def _hint(code: str, arg: str) -> str:
    if code == "invalid or unsupported Perl syntax":
        if arg.startswith(("(?=", "(?!", "(?<=", "(?<!")):
            return f"look-around assertions are not supported: {_RE2_SYNTAX}"
        if arg.startswith("(?>"):
            return f"atomic groups are not supported: {_RE2_SYNTAX}"
    if code == "invalid escape sequence" and _BACKREF.fullmatch(arg):
        return f"back-references are not supported: {_RE2_SYNTAX}"
    if code == "invalid nested repetition operator" and _POSSESSIVE.search(arg):
        return f"possessive quantifiers are not supported: {_RE2_SYNTAX}"
    return ""


def _error(value: str, re2_text: str) -> RegexError:
    kind, sep, arg = re2_text.partition(": ")
    if not sep:  # "pattern too large - compile failed" and the like
        return RegexError(value, "expression too large", value)
    code = _GO_CODES.get(kind, kind)
    return RegexError(value, code, arg, _hint(code, arg))


def _any_byte_escape(value: str) -> bool:
    """Whether ``value`` uses ``\\C`` outside ``\\Q...\\E`` (C++ RE2 only, not Go)."""
    i, n = 0, len(value)
    while i < n - 1:
        if value[i] != "\\":
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "C":
            return True
        if nxt == "Q":
            end = value.find("\\E", i + 2)
            if end < 0:
                return False
            i = end + 2
            continue
        i += 2
    return False


@final
class Regex:
    """A compiled expression; :meth:`matches` is Go's ``MatchString`` on ``source``."""

    __slots__ = ("_prog", "source", "value")

    def __init__(self, value: str, source: str, prog: Any) -> None:
        self.value = value
        #: What RE2 compiled (``^(?:value)$`` for one matcher value).
        self.source = source
        self._prog = prog

    def matches(self, text: str) -> bool:
        """Whether ``text`` contains a match of ``source`` (anchored sources: is one)."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
        return bool(self._prog.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return _rebuild, (self.value, self.source)

    def __repr__(self) -> str:
        return f"Regex({self.source!r})"


def _compile(value: str, source: str) -> Regex:
    try:
        encoded = source.encode("utf-8")
    except UnicodeEncodeError:
        raise RegexError(value, "invalid UTF-8", value) from None
    prog = _re2.RE2(encoded, _OPTIONS)
    if not prog.ok():
        raise _error(value, prog.error().decode("utf-8", "replace"))
    return Regex(value, source, prog)


def _rebuild(value: str, source: str) -> Regex:
    return _compile(value, source)


def compile_anchored(value: str, *, twice: bool = False) -> Regex:
    """Compile a matcher value as Alertmanager does: ``^(?:value)$``, Go syntax.

    ``twice`` compiles ``^(?:^(?:value)$)$``, as Alertmanager does for the values of its
    ``match_re`` tables (parsed as ``^(?:value)$``, whose source a route then anchors
    again). The two differ only for values that are not valid on their own, such as
    ``a)|(b``: once anchored it matches any text starting with ``a`` or ending with
    ``b``; anchored twice, only ``a`` and ``b``. Raises :class:`RegexError` when
    Alertmanager would reject the value.
    """
    if _any_byte_escape(value):
        raise RegexError(value, "invalid escape sequence", "\\C",
                         "'\\C' (any byte) is not supported by Go's regexp")
    once = _compile(value, f"^(?:{value})$")
    return _compile(value, f"^(?:{once.source})$") if twice else once


def compile_union(regexes: Sequence[Regex]) -> Regex | None:
    """One expression matching what any of ``regexes`` matches (None if RE2 cannot).

    A union of anchored sources ``^(?:a)$|^(?:b)$`` is exact: a text matches it if and
    only if it matches one of them. Returns None when the union exceeds RE2's memory
    budget (then each regex is simply tried on its own).
    """
    source = "|".join(r.source for r in regexes)
    try:
        return _compile(source, source)
    except RegexError:
        return None
