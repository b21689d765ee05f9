"""Alertmanager-compatible label matchers: parsing, canonical form and evaluation.

A matcher is ``name OP value`` with ``OP`` one of ``=``, ``!=``, ``=~``, ``!~``. Parsing
follows Alertmanager's default ("fallback") mode: each input is parsed by a port of the
UTF-8 parser (``matcher/parse``, which knows positions) and by a port of the classic
parser (``pkg/labels.ParseMatchers``); the UTF-8 result is used when only it succeeds,
the classic result when only it succeeds or when both succeed but disagree (as upstream).
When both fail, the UTF-8 parser's positioned error is raised as a
:class:`MatcherParseError` whose ``offset`` is the 0-based character index of the problem
inside the matcher string (callers map it to a file column).

Regular expressions are Alertmanager's: compiled once by :mod:`router.rules.regex` with RE2
(the engine Go's ``regexp`` follows) as ``^(?:re)$``, so the syntax is Go's and matching
is linear-time in the label value. A regex Alertmanager rejects raises
:class:`MatcherParseError` naming the regex and giving Go's reason. A label missing from
the alert is matched as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from router.errors import MatcherParseError, RegexParseError
from router.rules.regex import Regex, RegexError
from router.rules.regex import compile_anchored as compile_regex

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherParseError",
    "RegexParseError",
    "parse_matcher",
    "parse_matchers",
    "parse_matchers_classic",
    "parse_matchers_utf8",
]


class MatchType(StrEnum):
    """The four matcher operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"

    def __str__(self) -> str:
        return self.value


_PLAIN_NAME = re.compile(r"[^\s{}!=~,\\\"'`]+")
# A regex that is a plain alternation of literals, e.g. ``critical|page``.
_LITERAL_ALT = re.compile(r"[A-Za-z0-9_\-:/ @%]*(?:\|[A-Za-z0-9_\-:/ @%]*)*")


def compile_anchored(value: str, *, text: str | None = None, offset: int = 0,
                     twice: bool = False) -> Regex:
    """Compile an Alertmanager regex value as ``^(?:value)$`` (Go syntax, RE2 engine).

    ``twice``: anchored as Alertmanager's ``match_re`` tables are (see
    :func:`router.rules.regex.compile_anchored`). Errors are raised as :class:`RegexParseError`
    naming the regex and giving Go's reason.
    """
    try:
        return compile_regex(value, twice=twice)
    except RegexError as exc:
        described = f"invalid regular expression {value!r}: {exc.reason}"
        raise RegexParseError(described, text=text if text is not None else value,
                              offset=offset, described=described,
                              go_message=exc.go_message) from None


def _literal_alternatives(value: str) -> frozenset[str] | None:
    """The exact set of strings a regex matches, when it is an alternation of literals."""
    if _LITERAL_ALT.fullmatch(value):
        return frozenset(value.split("|"))
    return None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One compiled label matcher. Equality and hashing use (name, type, value) only."""

    name: str
    type: MatchType
    value: str
    _regex: Regex | None = field(default=None, compare=False, hash=False, repr=False)
    #: For ``=`` the value; for a regex made only of literal alternatives, those literals.
    literals: frozenset[str] | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def create(cls, name: str, type: MatchType | str, value: str, *,
               match_re: bool = False) -> Matcher:
        """Build a matcher, compiling its regex; raises MatcherParseError on a bad regex.

        ``match_re``: the value comes from a ``match_re`` table, whose regexes
        Alertmanager anchors twice (it matters only for values such as ``a)|(b``).
        """
        mtype = MatchType(type)
        regex = None
        literals: frozenset[str] | None = None
        if mtype in (MatchType.REGEX, MatchType.NOT_REGEX):
            regex = compile_anchored(value, twice=match_re)
            literals = _literal_alternatives(value)
        else:
            literals = frozenset((value,))
        return cls(name, mtype, value, regex, literals)

    def matches_value(self, label_value: str) -> bool:
        """Whether a label value (``""`` when the label is missing) satisfies the matcher."""
        t = self.type
        if t is MatchType.EQUAL:
            return label_value == self.value
        if t is MatchType.NOT_EQUAL:
            return label_value != self.value
        if self.literals is not None:  # literal alternatives: a set lookup is exact
            found = label_value in self.literals
        else:
            assert self._regex is not None  # always set for regex types by create()
            found = self._regex.matches(label_value)
        return found if t is MatchType.REGEX else not found

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert's labels satisfy the matcher (missing label = empty string)."""
        return self.matches_value(labels.get(self.name, ""))

    @property
    def regex(self) -> Regex | None:
        """The compiled regex (``^(?:value)$``) of a regex matcher, else None."""
        return self._regex


    @property
    def is_positive_literal(self) -> bool:
        """True for ``=`` and for ``=~`` of literal alternatives (indexable by value)."""
        return self.literals is not None and self.type in (MatchType.EQUAL, MatchType.REGEX)

    def __str__(self) -> str:
        name = self.name
        if not _PLAIN_NAME.fullmatch(name):
            name = _quote(name)
        return f"{name}{self.type.value}{_quote(self.value)}"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# --------------------------------------------------------------------------- classic parser

# Go's \s is ASCII-only ([\t\n\f\r ]) and its $ is the end of the text: spell both out.
_CLASSIC_RE = re.compile(
    r"^[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*"
    r"((?s:.*?))[\t\n\f\r ]*\Z"
)


def _go_trim_space(s: str) -> str:
    return s.strip(" \t\n\r\v\f\x85\xa0")


def _classic_one(token: str, base: int) -> Matcher:
    m = _CLASSIC_RE.match(token)
    if not m:
        raise MatcherParseError(f"bad matcher format: {token}", text=token, offset=base)
    raw = m.group(3)
    full_raw = raw
    value: list[str] = []
    expect_trailing = False
    if raw.startswith('"'):
        raw = raw[1:]
        expect_trailing = True
    escaped = False
    n = len(raw)
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                value.append("\n")
            elif ch in ('"', "\\"):
                value.append(ch)
            else:
                value.append("\\" + ch)
            continue
        if ch == "\\":
            if i < n - 1:
                escaped = True
                continue
            value.append("\\")
        elif ch == '"':
            if not expect_trailing or i < n - 1:
                raise MatcherParseError(
                    f"matcher value contains unescaped double quote: {full_raw}",
                    text=token,
                    offset=base + m.start(3),
                )
            expect_trailing = False
        else:
            value.append(ch)
    if expect_trailing:
        raise MatcherParseError(
            f"matcher value contains unescaped double quote: {full_raw}",
            text=token,
            offset=base + m.start(3),
        )
    try:
        return Matcher.create(m.group(1), m.group(2), "".join(value))
    except RegexParseError as exc:  # upstream returns Go's regexp error text as is
        raise exc.at(text=token, offset=base + m.start(3), go_wording=True) from None


def parse_matchers_classic(text: str) -> list[Matcher]:
    """Port of Alertmanager's classic ``pkg/labels.ParseMatchers`` (exact error texts)."""
    s = text
    base = 0
    if s.startswith("{"):
        s = s[1:]
        base = 1
    if s.endswith("}"):
        s = s[:-1]
    tokens: list[tuple[str, int]] = []
    inside = False
    escaped = False
    buf: list[str] = []
    start = base
    for i, ch in enumerate(s):
        if ch == "," and not inside:
            tokens.append(("".join(buf), start))
            buf = []
            start = base + i + 1
            continue
        if ch == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        buf.append(ch)
    last = _go_trim_space("".join(buf))
    if last:
        tokens.append((last, start))
    return [_classic_one(tok, off) for tok, off in tokens]


# --------------------------------------------------------------------------- UTF-8 parser

_RESERVED = frozenset("{}!=~,\\\"'`")
_OPERATORS = {"=": MatchType.EQUAL, "!=": MatchType.NOT_EQUAL, "=~": MatchType.REGEX,
              "!~": MatchType.NOT_REGEX}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "{", "}", ",", "op", "quoted", "unquoted", "eof"
    value: str
    start: int
    end: int


def _describe(tok: _Token) -> str:
    if tok.kind == "eof":
        return "end of input"
    return repr(tok.value)


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "{},":
            tokens.append(_Token(ch, ch, i, i + 1))
            i += 1
        elif ch == "=":
            if i + 1 < n and text[i + 1] == "~":
                tokens.append(_Token("op", "=~", i, i + 2))
                i += 2
            else:
                tokens.append(_Token("op", "=", i, i + 1))
                i += 1
        elif ch == "!":
            if i + 1 < n and text[i + 1] in "=~":
                tokens.append(_Token("op", text[i : i + 2], i, i + 2))
                i += 2
            else:
                raise MatcherParseError(
                    "'!' must be followed by '=' or '~' (operators are =, !=, =~, !~)",
                    text=text, offset=i,
                )
        elif ch == '"':
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == '"':
                    break
                j += 1
            if j >= n:
                raise MatcherParseError(
                    "unterminated double-quoted string: missing closing '\"'",
                    text=text, offset=i,
                )
            tokens.append(_Token("quoted", text[i : j + 1], i, j + 1))
            i = j + 1
        elif ch in _RESERVED:
            raise MatcherParseError(
                f"unexpected {ch!r}: quote the value with double quotes to use it",
                text=text, offset=i,
            )
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _RESERVED:
                j += 1
            tokens.append(_Token("unquoted", text[i:j], i, j))
            i = j
    tokens.append(_Token("eof", "", n, n))
    return tokens


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", "\\": "\\", '"': '"'}


def _go_unquote(tok: _Token, text: str) -> str:
    """Decode a double-quoted token like Go's ``strconv.Unquote`` (UTF-8 validated)."""
    body = tok.value[1:-1]
    out = bytearray()
    i = 0
    n = len(body)

    def bad() -> MatcherParseError:
        return MatcherParseError(
            f"invalid escape sequence or character in quoted string {tok.value}",
            text=text, offset=tok.start,
        )

    while i < n:
        ch = body[i]
        if ch == "\n":
            raise bad()
        if ch != "\\":
            out += ch.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= n:
            raise bad()
        e = body[i + 1]
        if e in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[e].encode()
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise bad()
            code = int(digits, 16)
            if e == "x":
                out.append(code)
            else:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise bad()
                out += chr(code).encode()
            i += 2 + width
        elif e in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise bad()
            code = int(digits, 8)
            if code > 255:
                raise bad()
            out.append(code)
            i += 4
        else:
            raise bad()
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise bad() from None


def parse_matchers_utf8(text: str) -> list[Matcher]:
    """Port of Alertmanager's UTF-8 ``matcher/parse.Matchers`` with positioned errors."""
    toks = _lex(text)
    pos = 0

    def peek() -> _Token:
        return toks[pos]

    def fail(tok: _Token, expected: str) -> MatcherParseError:
        return MatcherParseError(f"unexpected {_describe(tok)}: expected {expected}",
                                 text=text, offset=tok.start)

    result: list[Matcher] = []
    has_open = False
    if peek().kind == "{":
        has_open = True
        pos += 1
    while True:
        tok = peek()
        if tok.kind == "eof" or tok.kind == "}":
            break
        if tok.kind not in ("quoted", "unquoted"):
            raise fail(tok, "a label name")
        name = _go_unquote(tok, text) if tok.kind == "quoted" else tok.value
        if not name:
            raise MatcherParseError("the label name is empty", text=text, offset=tok.start)
        pos += 1
        op = peek()
        if op.kind != "op":
            raise fail(op, "an operator such as '=', '!=', '=~' or '!~'")
        pos += 1
        val = peek()
        if val.kind not in ("quoted", "unquoted"):
            raise fail(val, "a label value")
        value = _go_unquote(val, text) if val.kind == "quoted" else val.value
        pos += 1
        try:
            result.append(Matcher.create(name, _OPERATORS[op.value], value))
        except RegexParseError as exc:
            raise exc.at(text=text, offset=val.start) from None
        sep = peek()
        if sep.kind == ",":
            pos += 1
            nxt = peek()
            if nxt.kind not in ("eof", "}", "quoted", "unquoted"):
                raise fail(nxt, "a matcher or a closing brace after the comma")
            continue
        if sep.kind not in ("eof", "}"):
            raise fail(sep, "a comma or a closing brace")
    tok = peek()
    if has_open:
        if tok.kind != "}":
            raise MatcherParseError("missing closing brace '}'", text=text, offset=tok.start)
        pos += 1
    elif tok.kind == "}":
        raise MatcherParseError("unexpected '}' without an opening brace '{'", text=text,
                                offset=tok.start)
    tok = peek()
    if tok.kind != "eof":
        raise fail(tok, "end of input")
    return result


# --------------------------------------------------------------------------- public API


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a matcher list like Alertmanager's default (fallback) mode does.

    Accepts ``{a="b", c=~"d"}``, ``a="b",c!=d``, a single matcher, and the quirks of the
    classic parser. Raises :class:`MatcherParseError` (and nothing else) on bad input.
    """
    utf8_err: MatcherParseError | None = None
    classic_err: MatcherParseError | None = None
    utf8: list[Matcher] | None = None
    classic: list[Matcher] | None = None
    try:
        utf8 = parse_matchers_utf8(text)
    except MatcherParseError as exc:
        utf8_err = exc
    try:
        classic = parse_matchers_classic(text)
    except MatcherParseError as exc:
        classic_err = exc
    if utf8 is not None and classic is not None:
        return classic if classic != utf8 else utf8
    if utf8 is not None:
        return utf8
    if classic is not None:
        return classic
    # Both failed. A regex error is best reported as such; otherwise the positioned one.
    assert utf8_err is not None and classic_err is not None
    if isinstance(classic_err, RegexParseError) and not isinstance(utf8_err, RegexParseError):
        raise classic_err.at(text=classic_err.text, offset=classic_err.offset)
    raise utf8_err


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher (``name OP value``)."""
    found = parse_matchers(text)
    if len(found) != 1:
        raise MatcherParseError(
            "no matcher found" if not found else f"expected 1 matcher, found {len(found)}",
            text=text, offset=0,
        )
    return found[0]
