"""The RE2 → Python regex translation used by the Alertmanager importer."""

from __future__ import annotations

import re

import pytest

from router.matchers import compile_anchored
from router.rules.importer_re2 import Re2Invalid, Re2Untranslatable, translate_re2


def _full(pattern: str, value: str) -> bool:
    return compile_anchored(pattern).fullmatch(value) is not None


@pytest.mark.parametrize("value", ["foo", "foo|bar", "prod.*", "(?i)host-[a-z]+", "a{2,3}",
                                   "[a-z0-9_-]+", "(?s).*", "", "x(y|z)?", "é+"])
def test_common_regexes_are_unchanged(value: str) -> None:
    """Expressions both dialects read alike are kept verbatim, with no note."""
    tr = translate_re2(value)
    assert tr.pattern == value
    assert not tr.changed


@pytest.mark.parametrize(("value", "matches", "misses"), [
    (r"v\d+", ["v12"], ["v١٢"]),
    (r"\w+", ["ab_1"], ["é"]),
    (r"a\sb", ["a b", "a\tb"], ["a\u00a0b"]),
    (r"[\d.]+", ["1.2"], ["١.٢"]),
    ("[[:alpha:]]+", ["abc"], ["é", ":"]),
    ("[[:^digit:]]", ["a"], ["1"]),
    ("x{,3}", ["x{,3}"], ["x", "xxx", ""]),
    (r"\Qa.b\E+", ["a.b", "a.bb"], ["axb", "a.b+"]),
    ("Disk(?i)full", ["DiskFULL"], ["diskfull"]),
    ("a(?i)b|c", ["aB", "C"], ["AB"]),
    ("(?U)a+", ["aaa"], [""]),
    ("(?U:a+)b", ["aab"], ["b"]),
    (r"/var$\n?", ["/var"], ["/var\n"]),
    ("(?m)a$\nb", ["a\nb"], ["ab"]),
    (r"x\z", ["x"], ["x\n"]),
    (r"\x{e9}|\x41|\101", ["é", "A"], ["x"]),
    (r".*\bdown\b.*", ["x down y", "down", "édown", "downé"], ["xdown", "down_"]),
    (r"\Bo\B", [], ["o"]),
    ("(?<name>ab)", ["ab"], ["a"]),
    ("[&&a]", ["&", "a"], ["b"]),
    (r"[x\D]+", ["x", "ab", "١"], ["1", "x1"]),
    (r"[^x\D]", ["1"], ["x", "a", "١"]),
    ("[[:^alpha:]0-9]", ["1", "é", "-"], ["a"]),
    (r"[^\d\S]", [" "], ["1", "a"]),
])
def test_rewritten_regexes_match_like_re2(value: str, matches: list[str],
                                          misses: list[str]) -> None:
    """A rewritten regex accepts what RE2 accepts (Go's semantics: ASCII \\d \\w \\b, ...)."""
    tr = translate_re2(value)
    for v in matches:
        assert _full(tr.pattern, v), (tr.pattern, v)
    for v in misses:
        assert not _full(tr.pattern, v), (tr.pattern, v)


def test_notes_say_what_changed() -> None:
    """Each rewrite explains itself (these notes go to the report and the YAML comments)."""
    notes = " ".join(translate_re2(r"[[:alpha:]]\d(?U)x").notes)
    assert "POSIX class" in notes and "ASCII class" in notes and "ungreedy" in notes


@pytest.mark.parametrize("value", [r"\pL+", r"\p{Greek}", r"[\P{L}]", r"\C"])
def test_untranslatable(value: str) -> None:
    """Unicode classes and \\C cannot be expressed (Python's re rejects them: loud)."""
    with pytest.raises(Re2Untranslatable):
        translate_re2(value)


@pytest.mark.parametrize(("value", "why"), [
    ("(?=a)b", "look-around"), ("(?<!a)b", "look-around"), (r"(a)\1", "back-reference"),
    ("(?>a)", "atomic"), ("a++", "possessive"), ("a{1001}", "repeat count"),
    (r"a\Z", r"\Z"), ("(a", "closing"), ("a)", "unexpected"), ("[a", "closing"),
    ("(?x)a b", "group syntax"),
])
def test_invalid_in_re2(value: str, why: str) -> None:
    """What RE2 refuses (so Alertmanager refuses the config) is reported as invalid."""
    with pytest.raises(Re2Invalid, match=re.escape(why)):
        translate_re2(value)


def test_case_insensitive_dotless_i_is_a_documented_caveat() -> None:
    """Under (?i) Python also matches 'İ'/'ı' for i (RE2 does not): a caveat, not silence."""
    tr = translate_re2("(?i)[a-z]+")
    assert tr.pattern == "(?i)[a-z]+" and not tr.changed
    assert tr.caveats and "U+0131" in tr.caveats[0]
    assert _full(tr.pattern, "ı")  # the remaining difference: RE2 says no (amtool-checked)
    assert not translate_re2("(?i)foo").caveats
    assert not translate_re2("[a-z]+").caveats
