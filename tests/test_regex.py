"""Regex matchers follow Alertmanager's Go regexp: RE2 syntax, semantics and linear time."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.rules.matchers import Matcher, MatcherParseError, RegexParseError, parse_matcher
from router.rules.regex import RegexError, compile_anchored, compile_union

ROOT = Path(__file__).resolve().parents[1]


def _full(value: str, text: str) -> bool:
    return Matcher.create("x", "=~", value).matches({"x": text})


# Reproducer: a route regex such as (a+)+b took seconds inside routing with Python's re
# (2^n back-tracking on 'a' * n + 'c'); labels are external input.
_NESTED = textwrap.dedent("""\
    import pathlib, tempfile
    from router.rules.matchers import parse_matcher
    from tests.rules.helpers import load_text
    m = parse_matcher('x=~"(a+)+b"')
    value = "a" * 40 + "c"
    print(m.matches({"x": value}), m.matches({"x": "a" * 40 + "b"}))
    with tempfile.TemporaryDirectory() as folder:
        rules = load_text(pathlib.Path(folder), '''
            route:
              audiences: [a]
              template: t
              channels: {default: [email]}
              routes:
                - {matchers: ['x=~"(a+)+b"'], audiences: [b]}
                - {matchers: ['x=~"(a|aa)+d"'], audiences: [c]}
            ''')
        assert rules.root.index is not None and rules.root.index.screens
        print(rules.evaluate({"x": value})[0].audiences,
              rules.evaluate_naive({"x": value})[0].audiences)
""")


def test_nested_quantifier_matches_in_linear_time() -> None:
    """(a+)+b against 'a'*40+'c' (matcher, screened route tree, naive walk) ends at once."""
    try:
        done = subprocess.run([sys.executable, "-c", _NESTED], capture_output=True, text=True,
                              timeout=30, check=False, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail("matching (a+)+b against 'a' * 40 + 'c' did not finish in 30 s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False True", "('a',) ('a',)"]


def test_perl_classes_are_ascii_as_in_go() -> None:
    """\\d does not match Arabic-Indic digits ('٣'), \\w not 'é', \\s not U+00A0 (Go RE2)."""
    assert _full(r"\d", "3") and not _full(r"\d", "٣")
    assert _full(r"\d+", "2026") and not _full(r"\d+", "٢٠٢٦")
    assert _full(r"\w+", "ab_1") and not _full(r"\w+", "é")
    assert _full(r"a\sb", "a\tb") and not _full(r"a\sb", "a\u00a0b")
    assert _full(r"[^\d]", "٣") and not _full(r"\D", "3")


@pytest.mark.parametrize(("value", "matches", "misses"), [
    (r"v\d+", ["v12"], ["v١٢"]),
    (r"[\d.]+", ["1.2"], ["١.٢"]),
    ("[[:alpha:]]+", ["abc"], ["é", ":"]),
    ("[[:^digit:]]", ["a"], ["1"]),
    ("x{,3}", ["x{,3}"], ["x", "xxx", ""]),
    (r"\Qa.b\E+", ["a.b", "a.bb"], ["axb", "a.b+"]),
    ("Disk(?i)full", ["DiskFULL"], ["diskfull"]),
    ("a(?i)b|c", ["aB", "C"], ["AB"]),
    ("(?U)a+", ["aaa"], [""]),
    ("(?s)a.b", ["a\nb"], []),
    ("a.b", ["a-b"], ["a\nb"]),
    (r"/var$\n?", ["/var"], ["/var\n"]),
    ("(?m)a$\nb", ["a\nb"], ["ab"]),
    ("foo", ["foo"], ["foo\n", "xfoo"]),
    (r"x\z", ["x"], ["x\n"]),
    (r"\x{e9}|\x41|\101", ["é", "A"], ["x"]),
    (r".*\bdown\b.*", ["x down y", "down", "édown", "downé"], ["xdown", "down_"]),
    (r"\Bo\B", [], ["o"]),
    ("(?<name>ab)|(?P<other>cd)", ["ab", "cd"], ["a"]),
    (r"[x\D]+", ["x", "ab", "١"], ["1", "x1"]),
    (r"[^x\D]", ["1"], ["x", "a", "١"]),
    (r"\pL+", ["abc", "αβγ", "é"], ["1", ""]),
    (r"\p{Greek}+", ["αβγ"], ["abc"]),
    (r"[\P{L}]", ["1"], ["a"]),
    ("(?i)k", ["k", "K", "\u212a"], []),  # Kelvin sign folds to k in RE2 and Go
])
def test_go_regexp_semantics(value: str, matches: list[str], misses: list[str]) -> None:
    """Each RE2/Go spelling matches as in Alertmanager (Python's re read many differently)."""
    for text in matches:
        assert _full(value, text), (value, text)
    for text in misses:
        assert not _full(value, text), (value, text)


def test_case_insensitive_i_does_not_fold_to_dotless_i() -> None:
    """Under (?i), 'ı' (U+0131) and 'İ' (U+0130) are not 'i' in RE2 (Python's re said yes)."""
    assert _full("(?i)admin", "ADMIN")
    assert not _full("(?i)admin", "admın")
    assert not _full("(?i)admin", "admİn")


@pytest.mark.parametrize(("value", "reason"), [
    ("(?=a)b", "invalid or unsupported Perl syntax: `(?=` (look-around"),
    ("(?!a)b", "invalid or unsupported Perl syntax: `(?!` (look-around"),
    ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<!` (look-around"),
    (r"(a)\1", "invalid escape sequence: `\\1` (back-references are not supported"),
    ("(?P<n>a)(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
    ("(?>a)", "invalid or unsupported Perl syntax: `(?>` (atomic groups"),
    ("a++", "invalid nested repetition operator: `++` (possessive quantifiers"),
    ("a**", "invalid nested repetition operator: `**`"),
    ("a{1001}", "invalid repeat count: `{1001}`"),
    (r"a\Z", "invalid escape sequence: `\\Z`"),
    (r"\C", "invalid escape sequence: `\\C`"),
    (r"x\C+", "invalid escape sequence: `\\C`"),
    ("(a", "missing closing ): `^(?:(a)$`"),
    ("[a", "missing closing ]: `[a)$`"),
    ("*a", "missing argument to repetition operator: `*`"),
    ("[z-a]", "invalid character class range: `z-a`"),
    ("(?x)a b", "invalid or unsupported Perl syntax: `(?x`"),
])
def test_rejected_as_go_rejects(value: str, reason: str) -> None:
    """What Alertmanager's regexp refuses is refused, with Go's reason (and a hint)."""
    with pytest.raises(RegexParseError) as info:
        Matcher.create("x", "=~", value)
    assert info.value.message.startswith(f"invalid regular expression {value!r}: {reason}")
    assert info.value.go_message.startswith("error parsing regexp: ")


def test_escaped_backslash_before_c_and_quoted_c_are_literals() -> None:
    """'\\\\C' (a backslash then C) and '\\Q\\C\\E' are valid: only a real \\C is refused."""
    assert _full(r"\\C", "\\C")
    assert _full(r"\Q\C\E", "\\C")


def test_go_error_text_is_alertmanagers() -> None:
    """go_message is exactly what Go's regexp.Compile says for Alertmanager's ^(?:v)$."""
    with pytest.raises(RegexError) as info:
        compile_anchored("invalid[regexp")
    assert info.value.go_message == "error parsing regexp: missing closing ]: `[regexp)$`"


def test_regex_error_offset_points_at_the_value() -> None:
    """A rejected regex is reported at its value inside the matcher string."""
    with pytest.raises(MatcherParseError) as info:
        parse_matcher('job=~"(?=api)"')
    assert info.value.offset == 5
    assert "look-around" in info.value.message


def test_unbalanced_value_is_anchored_like_alertmanager() -> None:
    """'a)|(b' is ^(?:a)|(?:b)$ in matchers, but anchored twice in match_re (amtool-checked)."""
    once = Matcher.create("x", "=~", "a)|(b")
    twice = Matcher.create("x", "=~", "a)|(b", match_re=True)
    assert [once.matches_value(v) for v in ("a", "ax", "xb", "xa")] == [True, True, True, False]
    assert [twice.matches_value(v) for v in ("a", "b", "ax", "xb")] == [True, True, False, False]
    with pytest.raises(RegexParseError):
        Matcher.create("x", "=~", r"\Qa", match_re=True)


def test_lone_surrogate_label_matches_as_replacement_character() -> None:
    """A label value with a lone surrogate (JSON '\\ud800') is seen as U+FFFD, as in Go."""
    assert _full(".", "\ud800")
    assert _full("\ufffd", "\ud800")
    assert _full("a.b", "a\udfffb")
    assert not _full("a", "\ud800")


def test_invalid_utf8_pattern_is_refused() -> None:
    """A pattern that cannot be UTF-8 (a lone surrogate) is an error, not a crash."""
    with pytest.raises(RegexParseError, match="invalid UTF-8"):
        Matcher.create("x", "=~", "\ud800")


def test_compiled_regex_pickles() -> None:
    """A compiled regex survives pickling (it is rebuilt from its source)."""
    rx = compile_anchored("(?i)db-[0-9]+")
    copy = pickle.loads(pickle.dumps(rx))
    assert copy.source == rx.source and copy.matches("DB-12") and not copy.matches("db-")


def test_union_beyond_re2_memory_budget_is_none() -> None:
    """compile_union gives up (None) rather than fail when RE2 cannot hold the union."""
    parts = [compile_anchored(f"{i}\\pL{{250}}") for i in range(6)]
    assert compile_union(parts) is None
    assert compile_union(parts[:1]) is not None


_UNION_PARTS = ["a.*", "(?i)b+", "x)|(y", "[0-9]{2}", "", r"\pL", "c|d"]


@settings(max_examples=300, deadline=None)
@given(chosen=st.lists(st.sampled_from(_UNION_PARTS), min_size=1, max_size=5),
       text=st.text(alphabet="abxyABcd01é\n", max_size=6))
def test_union_matches_exactly_what_one_part_matches(chosen: list[str], text: str) -> None:
    """A text matches the union of anchored regexes if and only if it matches one of them."""
    parts = [compile_anchored(v) for v in chosen]
    union = compile_union(parts)
    assert union is not None
    assert union.matches(text) is any(p.matches(text) for p in parts)


@settings(max_examples=300, deadline=None)
@given(alternatives=st.lists(st.text(alphabet="ab-: @%/_", max_size=3), min_size=1, max_size=4),
       text=st.text(alphabet="ab-: @%/_|", max_size=4))
def test_literal_alternatives_shortcut_equals_re2(alternatives: list[str], text: str) -> None:
    """A regex of literal alternatives is checked by set lookup: the same answer as RE2."""
    m = Matcher.create("x", "=~", "|".join(alternatives))
    assert m.literals is not None and m.regex is not None
    assert m.matches_value(text) is m.regex.matches(text)
