"""Translate an Alertmanager (Go RE2) regular expression into an equivalent Python one.

Alertmanager compiles ``match_re`` values and ``=~``/``!~`` matchers with Go's RE2,
anchored; Tocsin compiles them with Python's ``re``, anchored the same way. The two
dialects agree on most expressions but differ on a few, sometimes *silently* (the same
text compiles in both and matches different strings). This module rewrites an RE2
expression so that Python's ``re`` (``fullmatch``) accepts exactly the strings RE2
(``^(?:re)$``) accepts, and says what it changed:

=====================  ================================  ===============================
RE2                    Python ``re`` would               rewritten as
=====================  ================================  ===============================
``\\d \\w \\s \\b``       match Unicode digits, letters,    the ASCII classes RE2 means
                       spaces (``"١٢"`` is ``\\d+``)       (``[0-9]``, ``[0-9A-Za-z_]``, ...)
``[[:alpha:]]``        read a set of ``[:alph`` + ``]``  ``[A-Za-z]`` (every POSIX class)
``a{,3}`` (literal)    repeat ``a`` 0 to 3 times          ``a\\{,3}``
``$`` (end of text)    also match before a final ``\\n``   ``\\Z``
``\\z``                 reject it (Python 3.11)            ``\\Z``
``\\Q...\\E``            reject it                          the escaped literal
``\\x{263a}``, ``\\123``  reject / read a back-reference   the character
``(?<name>re)``        reject it (Python 3.11)            ``(?P<name>re)``
``a(?i)b``             reject it (flags not at start)     ``a(?i:b)``
``(?U)`` (ungreedy)    reject it                          dropped: greediness cannot
                                                          change an anchored match
``[x\\D]``             use Unicode digits for ``\\D``     ``(?:[x]|[^0-9])``
=====================  ================================  ===============================

What cannot be translated raises :class:`Re2Untranslatable` (Unicode classes ``\\pL`` and
``\\p{Greek}``, ``\\C``); Python's ``re`` rejects both, so a rule file keeping them fails
``tocsin rules check``. What RE2 itself rejects (look-arounds, back-references,
atomic groups, possessive quantifiers, repeat counts above 1000, ``\\Z``) raises
:class:`Re2Invalid`: such a configuration never loaded in Alertmanager.

Known remaining difference, returned as a caveat (the importer reports it): under
``(?i)``, Python also matches ``İ`` (U+0130) and ``ı`` (U+0131) for ``i``, which RE2's
simple case folding does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Re2Invalid", "Re2Untranslatable", "Translation", "translate_re2"]


class Re2Untranslatable(ValueError):
    """The RE2 expression uses a feature Python's ``re`` cannot express here."""


class Re2Invalid(ValueError):
    """The expression is not valid RE2 (Alertmanager would refuse the configuration)."""


@dataclass(frozen=True, slots=True)
class Translation:
    """A Python spelling of an RE2 expression, and what had to change (human notes)."""

    pattern: str
    notes: tuple[str, ...] = ()
    #: Differences that remain after translation (see the module docstring).
    caveats: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when the Python pattern differs from the RE2 text."""
        return bool(self.notes)


_WORD = "0-9A-Za-z_"
_SPACE = "\\t\\n\\f\\r "
_PERL = {"d": "[0-9]", "D": "[^0-9]", "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
         "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]"}
_PERL_IN_CLASS = {"d": "0-9", "w": _WORD, "s": _SPACE}
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z", "word": _WORD, "xdigit": "0-9A-Fa-f",
}
_B = f"(?:(?<![{_WORD}])(?=[{_WORD}])|(?<=[{_WORD}])(?![{_WORD}]))"
_NB = f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])")
_NAMED = re.compile(r"\(\?P?<([A-Za-z0-9_]+)>")
_MAX_REPEAT = 1000
_CASE_FOLD = re.compile(r"\(\?[imsU]*i[imsU-]*[:)]")
_DOTLESS = re.compile(r"[iI]|a-z|A-Z|\\w|\[:(?:alpha|alnum|lower|upper|word):\]")
_DOTLESS_CAVEAT = ("case-insensitive: Python's re also matches 'İ' (U+0130) and 'ı' (U+0131) "
                   "for i/I, which RE2 does not")


@dataclass
class _Group:
    flags: dict[str, bool] = field(default_factory=dict)  # changes made by (?x) here
    open_scoped: bool = False  # an inline "(?x)" opened a scoped group not yet closed
    multiline: bool = False


def _flag_group(flags: dict[str, bool]) -> str:
    on = "".join(sorted(f for f, v in flags.items() if v))
    off = "".join(sorted(f for f, v in flags.items() if not v))
    return f"(?{on}-{off}:" if off else f"(?{on}:"


class _Translator:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.out: list[str] = []
        self.notes: list[str] = []
        self.stack: list[_Group] = [_Group()]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def run(self) -> Translation:
        src = self.src
        while self.i < len(src):
            ch = src[self.i]
            if ch == "\\":
                self.escape()
            elif ch == "[":
                self.char_class()
            elif ch == "(":
                self.open_group()
            elif ch == ")":
                self.close_group()
            elif ch == "|":
                self.alternative()
            elif ch == "{":
                self.brace()
            elif ch in "*+?":
                self.quantifier(ch)
            elif ch == "$":
                if self.stack[-1].multiline:
                    self.out.append("$")
                else:
                    self.out.append("\\Z")
                    self.note("'$' (end of text in RE2) written '\\Z' (Python's '$' also "
                              "matches before a final newline)")
                self.i += 1
            else:
                self.out.append(ch)
                self.i += 1
        if len(self.stack) > 1:
            raise Re2Invalid("missing closing ')'")
        self.end_scoped(self.stack[-1])
        return Translation("".join(self.out), tuple(self.notes))

    # ---------------------------------------------------------------- groups and flags

    def end_scoped(self, group: _Group) -> None:
        if group.open_scoped:
            self.out.append(")")
            group.open_scoped = False

    def open_group(self) -> None:
        src, i = self.src, self.i
        flags = _FLAGS.match(src, i)
        named = _NAMED.match(src, i)
        parent = self.stack[-1]
        if flags:
            on, off, end = flags.group(1), flags.group(2) or "", flags.group(3)
            if "U" in on + off:
                self.note("the RE2 flag U (ungreedy) was dropped: greediness cannot change "
                          "whether an anchored match exists")
            change = {f: True for f in on if f != "U"}
            change.update({f: False for f in off if f != "U"})
            self.i = flags.end()
            if end == ":":
                self.out.append(_flag_group(change) if change else "(?:")
                self.stack.append(_Group(multiline=change.get("m", parent.multiline)))
                return
            if not change:
                return
            at_start = not self.out and len(self.stack) == 1 and not parent.flags
            parent.flags.update(change)
            parent.multiline = parent.flags.get("m", parent.multiline)
            if at_start and all(change.values()):
                self.out.append(f"(?{''.join(sorted(change))})")
                return
            self.end_scoped(parent)
            self.out.append(_flag_group(parent.flags))
            parent.open_scoped = True
            self.note("inline flags after the start are written as a scoped group "
                      "'(?flags:...)' (Python rejects them elsewhere)")
            return
        if named:
            if not src.startswith("(?P<", i):
                self.note("'(?<name>' written '(?P<name>'")
            self.out.append(f"(?P<{named.group(1)}>")
            self.i = named.end()
        elif src.startswith("(?", i):
            what = src[i:i + 4]
            if what.startswith(("(?=", "(?!", "(?<=", "(?<!")):
                raise Re2Invalid(f"look-around '{what}' is not supported by RE2")
            if what.startswith("(?>"):
                raise Re2Invalid("atomic groups '(?>...)' are not supported by RE2")
            raise Re2Invalid(f"invalid or unsupported group syntax '{what}'")
        else:
            self.out.append("(")
            self.i += 1
        self.stack.append(_Group(multiline=parent.multiline))

    def close_group(self) -> None:
        if len(self.stack) == 1:
            raise Re2Invalid("unexpected ')'")
        self.end_scoped(self.stack.pop())
        self.out.append(")")
        self.i += 1

    def alternative(self) -> None:
        group = self.stack[-1]
        if group.open_scoped:
            # The flags hold until the end of the group, across alternatives.
            self.out.append(")|" + _flag_group(group.flags))
        else:
            self.out.append("|")
        self.i += 1

    # ------------------------------------------------------------------- repetitions

    def brace(self) -> None:
        m = _REPEAT.match(self.src, self.i)
        if m is None:
            self.out.append("\\{")
            if self.src.startswith("{,", self.i):
                self.note("'{,n}' is literal text in RE2 (a repetition in Python): escaped")
            self.i += 1
            return
        low = int(m.group(1))
        high = int(m.group(3)) if m.group(3) else low
        if low > _MAX_REPEAT or high > _MAX_REPEAT:
            raise Re2Invalid(f"repeat count above {_MAX_REPEAT} in '{m.group(0)}'")
        self.out.append(m.group(0))
        self.i = m.end()
        self.after_quantifier()

    def quantifier(self, ch: str) -> None:
        self.out.append(ch)
        self.i += 1
        self.after_quantifier()

    def after_quantifier(self) -> None:
        if self.i < len(self.src) and self.src[self.i] == "?":
            self.out.append("?")
            self.i += 1
        elif self.i < len(self.src) and self.src[self.i] in "*+":
            raise Re2Invalid("nested repetition operator (possessive quantifier) is not "
                             "supported by RE2")

    # ----------------------------------------------------------------------- escapes

    def code_point(self, in_class: bool) -> str | None:
        """Read ``\\x{...}``, ``\\xhh`` or an octal escape at self.i; None if not one."""
        src, i = self.src, self.i
        nxt = src[i + 1] if i + 1 < len(src) else ""
        if nxt == "x":
            if src.startswith("{", i + 2):
                end = src.find("}", i + 3)
                digits = src[i + 3:end] if end > 0 else ""
                if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise Re2Invalid("invalid escape '\\x{...}'")
                self.i = end + 1
                code = int(digits, 16)
            else:
                digits = src[i + 2:i + 4]
                if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise Re2Invalid("invalid escape '\\x': expected two hex digits")
                self.i = i + 4
                code = int(digits, 16)
        elif nxt in "01234567" and nxt:
            m = re.compile(r"[0-7]{1,3}").match(src, i + 1)
            assert m is not None
            if nxt != "0" and len(m.group(0)) == 1:
                raise Re2Invalid(f"back-reference '\\{nxt}' is not supported by RE2")
            self.i = m.end()
            code = int(m.group(0), 8)
        else:
            return None
        if code > 0x10FFFF:
            raise Re2Invalid("escape beyond U+10FFFF")
        self.note(f"the escape '{src[i:self.i]}' written as the character it stands for")
        return re.escape(chr(code)) if not in_class else _class_char(chr(code))

    def escape(self) -> None:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise Re2Invalid("trailing backslash")
        c = src[i + 1]
        point = self.code_point(in_class=False)
        if point is not None:
            self.out.append(point)
            return
        self.i = i + 2
        if c in _PERL:
            self.out.append(_PERL[c])
            self.note(f"'\\{c}' written as the ASCII class RE2 means ({_PERL[c]}); in Python "
                      "it would also match non-ASCII characters")
        elif c in "bB":
            self.out.append(_B if c == "b" else _NB)
            self.note(f"'\\{c}' rewritten for ASCII word characters, as in RE2")
        elif c == "z":
            self.out.append("\\Z")
            self.note("'\\z' written '\\Z'")
        elif c == "Z":
            raise Re2Invalid("'\\Z' is not supported by RE2 (use '\\z')")
        elif c == "Q":
            end = src.find("\\E", self.i)
            literal = src[self.i:] if end < 0 else src[self.i:end]
            self.i = len(src) if end < 0 else end + 2
            self.out.append(re.escape(literal))
            self.note("'\\Q...\\E' written as an escaped literal")
        elif c in "pP":
            raise Re2Untranslatable(
                f"the Unicode class '\\{c}{self._class_name()}' has no equivalent in "
                "Python's re module")
        elif c == "C":
            raise Re2Untranslatable("'\\C' (any byte) has no equivalent in Python's re module")
        elif c.isdigit():
            raise Re2Invalid(f"back-reference '\\{c}' is not supported by RE2")
        elif c.isalnum() and c not in "afnrtvA":
            raise Re2Invalid(f"invalid escape '\\{c}'")
        else:
            self.out.append("\\" + c)

    def _class_name(self) -> str:
        src = self.src
        if src.startswith("{", self.i):
            end = src.find("}", self.i)
            return src[self.i:end + 1] if end > 0 else src[self.i:]
        return src[self.i:self.i + 1]

    # ------------------------------------------------------------- character classes

    def char_class(self) -> None:
        src = self.src
        self.i += 1
        negated = src.startswith("^", self.i)
        if negated:
            self.i += 1
        items: list[str] = []
        excluded: list[str] = []  # ranges of negated members (\D, [:^alpha:])
        first = True
        while True:
            if self.i >= len(src):
                raise Re2Invalid("missing closing ']'")
            ch = src[self.i]
            if ch == "]" and not first:
                self.i += 1
                break
            first = False
            if src.startswith("[:", self.i):
                end = src.find(":]", self.i + 2)
                name = src[self.i + 2:end] if end > 0 else ""
                neg = name.startswith("^")
                if name.lstrip("^") in _POSIX:
                    self.i = end + 2
                    self.note(f"the POSIX class '[:{name}:]' written as a range (Python's re "
                              "has no POSIX classes)")
                    (excluded if neg else items).append(_POSIX[name.lstrip("^")])
                    continue
                if end > 0:
                    raise Re2Invalid(f"invalid character class '[:{name}:]'")
            if ch == "\\" and src[self.i + 1:self.i + 2] in ("D", "W", "S"):
                excluded.append(_PERL_IN_CLASS[src[self.i + 1].lower()])
                self.note(f"'{src[self.i:self.i + 2]}' inside brackets written with the ASCII "
                          "class RE2 means")
                self.i += 2
                continue
            if ch == "\\":
                items.append(self.class_escape())
                continue
            items.append(_class_char(ch))
            self.i += 1
        self.out.append(_set_expression("".join(items), excluded, negated=negated))

    def class_escape(self) -> str:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise Re2Invalid("trailing backslash")
        c = src[i + 1]
        point = self.code_point(in_class=True)
        if point is not None:
            return point
        self.i = i + 2
        if c in _PERL_IN_CLASS:
            self.note(f"'\\{c}' written as the ASCII class RE2 means; in Python it would "
                      "also match non-ASCII characters")
            return _PERL_IN_CLASS[c]
        if c in "pP":
            raise Re2Untranslatable(
                f"the Unicode class '\\{c}{self._class_name()}' has no equivalent in "
                "Python's re module")
        if c.isalnum() and c not in "afnrtv":
            raise Re2Invalid(f"invalid escape '\\{c}' in a character class")
        return "\\" + c


def _set_expression(items: str, excluded: list[str], *, negated: bool) -> str:
    """A bracket expression with members ``items`` plus the complements of ``excluded``.

    Python's sets cannot hold a complement (``[x\\D]`` would use Unicode digits), so
    ``[x\\D]`` becomes ``(?:[x]|[^0-9])`` and ``[^x\\D]`` becomes ``(?:(?![x])[0-9])``.
    """
    if not excluded:
        return "[" + ("^" if negated else "") + items + "]"
    if not negated:
        parts = ([f"[{items}]"] if items else []) + [f"[^{r}]" for r in excluded]
        return "(?:" + "|".join(parts) + ")"
    look = f"(?![{items}])" if items else ""
    ahead = "".join(f"(?=[{r}])" for r in excluded[:-1])
    return f"(?:{look}{ahead}[{excluded[-1]}])"


def _class_char(ch: str) -> str:
    # Escape what Python reads specially (or warns about) inside a set: nested sets and
    # the set operators reserved for the future ("[[", "&&", "~~", "||").
    return "\\" + ch if ch in "[]\\&~|^" else ch


def translate_re2(value: str) -> Translation:
    """The Python ``re`` spelling of the RE2 expression ``value`` (see module docstring).

    Raises :class:`Re2Invalid` when RE2 rejects it, :class:`Re2Untranslatable` when
    Python cannot express it.
    """
    result = _Translator(value).run()
    caveats: tuple[str, ...] = ()
    if _CASE_FOLD.search(value) and _DOTLESS.search(_CASE_FOLD.sub("", value)):
        caveats = (_DOTLESS_CAVEAT,)
    if not result.notes:
        return Translation(value, (), caveats)
    return Translation(result.pattern, result.notes, caveats)
