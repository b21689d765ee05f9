"""A small YAML writer for imported rule files: readable output with comments.

PyYAML's dumper cannot place comments, and an imported rule file is meant to be read
and finished by a person, so the importer writes its YAML itself with these helpers.
Every scalar is written so that Tocsin's loader reads back the exact string (plain when
that is unambiguous, else single- or double-quoted).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterable

__all__ = ["Block", "flow_list", "scalar"]

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@/+-]*$")
_NULLISH = frozenset({"null", "Null", "NULL", "~"})
# Characters a YAML single-quoted scalar cannot hold as is (PyYAML: non-printable, and
# line breaks, which would be folded).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff"
                          "\ud800-\udfff\n\t\r]")


def _double(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", out)


def scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as exactly this string."""
    if _PLAIN.match(text) and text not in _NULLISH:
        return text
    if _UNPRINTABLE.search(text) or text != text.strip(" "):
        return _double(text)
    return "'" + text.replace("'", "''") + "'"


def flow_list(items: Iterable[str]) -> str:
    """``[a, 'b c']``."""
    return "[" + ", ".join(scalar(i) for i in items) + "]"


class Block:
    """Lines of YAML at increasing indentation (two spaces per level)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, indent: int, text: str) -> None:
        """One line at ``indent`` levels."""
        self.lines.append("  " * indent + text)

    def comment(self, indent: int, text: str, *, width: int = 92) -> None:
        """A comment, wrapped to ``width`` columns; each paragraph on its own lines."""
        prefix = "  " * indent + "# "
        for para in text.split("\n"):
            wrapped = textwrap.wrap(para, width=max(40, width - len(prefix)),
                                    break_long_words=False, break_on_hyphens=False)
            for part in wrapped or [""]:
                self.lines.append((prefix + part).rstrip())

    def item(self, indent: int, child: Block) -> None:
        """``child`` (a mapping) as one entry of a block list at ``indent``."""
        body = [ln for ln in child.lines]
        while body and body[0].lstrip().startswith("#"):
            self.lines.append("  " * indent + body.pop(0).lstrip())
        if not body:
            self.line(indent, "- {}")
            return
        self.line(indent, "- " + body[0])
        for ln in body[1:]:
            self.lines.append(("  " * indent + "  " + ln) if ln else "")

    def extend(self, indent: int, child: Block) -> None:
        """Append ``child``'s lines, indented by ``indent`` more levels."""
        for ln in child.lines:
            self.lines.append(("  " * indent + ln) if ln else "")

    def text(self) -> str:
        """The YAML text, ending with a newline."""
        return "\n".join(self.lines) + "\n"
