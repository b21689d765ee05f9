"""Unit and property tests of router.rules.matchers (parsing, canonical form, evaluation)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.rules.matchers import (
    Matcher,
    MatcherParseError,
    MatchType,
    parse_matcher,
    parse_matchers,
)

# --------------------------------------------------------------------------- unit


def test_regex_is_fully_anchored() -> None:
    """=~ must match the whole value: 'crit' does not match 'critical'."""
    m = parse_matcher('severity=~"crit"')
    assert not m.matches({"severity": "critical"})
    assert parse_matcher('severity=~"crit.*"').matches({"severity": "critical"})


def test_regex_alternation_is_anchored_as_a_group() -> None:
    """^(?:a|b)$, not ^a|b$: 'xb' must not match 'a|b'."""
    m = parse_matcher('x=~"a|b"')
    assert m.matches({"x": "b"})
    assert not m.matches({"x": "xb"})
    assert not m.matches({"x": "ax"})


def test_regex_does_not_match_before_trailing_newline() -> None:
    """Python's $ would match before a final newline; anchoring must not."""
    assert not parse_matcher('x=~"foo"').matches({"x": "foo\n"})


def test_missing_label_is_empty_string() -> None:
    """A missing label matches "" for every operator."""
    assert parse_matcher('env=""').matches({})
    assert parse_matcher('env!="prod"').matches({})
    assert parse_matcher('env=~".*"').matches({})
    assert not parse_matcher('env=~".+"').matches({})
    assert parse_matcher('env!~".+"').matches({})


def test_leading_inline_flags_are_hoisted() -> None:
    """(?i) and (?s) at the start of a value work as in Go RE2."""
    assert parse_matcher('x=~"(?i)host.*"').matches({"x": "HOSTdown"})
    assert parse_matcher('x=~"(?s)a.b"').matches({"x": "a\nb"})


def test_inline_flags_anywhere_work_as_in_go() -> None:
    """Inline flags mid-expression work as in Go RE2 (Python's re rejected them), scoped."""
    m = parse_matcher('x=~"foo(?i)bar"')
    assert m.matches({"x": "fooBAR"})
    assert not m.matches({"x": "FOObar"})
    assert parse_matcher('x=~"a(?i:b)c"').matches({"x": "aBc"})
    assert not parse_matcher('x=~"a(?i:b)c"').matches({"x": "aBC"})


def test_invalid_regex_reports_offset_of_value() -> None:
    """The error offset points at the value inside the matcher string."""
    with pytest.raises(MatcherParseError) as info:
        parse_matchers('a="b", c=~"[oops"')
    assert info.value.offset == 10
    assert "'[oops'" in info.value.message
    assert "missing closing ]: `[oops)$`" in info.value.message  # Go's reason


def test_quoted_escapes() -> None:
    r"""\" \\ and \n are decoded inside quoted values."""
    m = parse_matcher(r'msg="say \"hi\"\\n\nend"')
    assert m.value == 'say "hi"\\n\nend'


def test_brace_list_and_utf8_names() -> None:
    """Brace lists parse in order; quoted UTF-8 names are allowed."""
    ms = parse_matchers('{a="b", "clé ☃"=~"d", e!~f}')
    assert [(m.name, m.type, m.value) for m in ms] == [
        ("a", MatchType.EQUAL, "b"),
        ("clé ☃", MatchType.REGEX, "d"),
        ("e", MatchType.NOT_REGEX, "f"),
    ]


def test_syntax_error_offset() -> None:
    """A bad operator is reported at its column inside the string."""
    with pytest.raises(MatcherParseError) as info:
        parse_matcher("severity!critical")
    assert info.value.offset == 8
    assert info.value.column == 9


def test_canonical_form() -> None:
    """str() gives Alertmanager's canonical rendering, quoting names only when needed."""
    assert str(parse_matcher("foo = bar")) == 'foo="bar"'
    assert str(Matcher.create("a b", "!~", 'x"y')) == '"a b"!~"x\\"y"'


def test_equality_ignores_compiled_regex() -> None:
    """Two matchers with the same name, type and value are equal and hash alike."""
    a, b = Matcher.create("x", "=~", "a.*"), Matcher.create("x", "=~", "a.*")
    assert a == b
    assert hash(a) == hash(b)


# --------------------------------------------------------------------------- properties

names = st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s)
values = st.text(max_size=16)
literal_values = st.text(max_size=16)


@settings(max_examples=300)
@given(name=names, op=st.sampled_from(["=", "!="]), value=values)
def test_round_trip_equality(name: str, op: str, value: str) -> None:
    """parse(str(m)) == m for any name and value (equality operators)."""
    m = Matcher.create(name, op, value)
    assert parse_matcher(str(m)) == m


regexes = st.sampled_from(["", ".*", "a|b", "foo.+", "[0-9]{2,3}", r"\d+", "(?i)x", "é+",
                           "a\\.b", "(x|y)z?"])


@settings(max_examples=200)
@given(name=names, op=st.sampled_from(["=~", "!~"]), value=regexes)
def test_round_trip_regex(name: str, op: str, value: str) -> None:
    """parse(str(m)) == m for regex matchers too."""
    m = Matcher.create(name, op, value)
    assert parse_matcher(str(m)) == m


@settings(max_examples=300)
@given(value=values, label=st.one_of(st.none(), values))
def test_not_equal_is_negation_of_equal(value: str, label: str | None) -> None:
    """!= is exactly the negation of =, including for a missing label."""
    labels = {} if label is None else {"x": label}
    eq = Matcher.create("x", "=", value)
    ne = Matcher.create("x", "!=", value)
    assert ne.matches(labels) is (not eq.matches(labels))


@settings(max_examples=300)
@given(regex=regexes, label=st.one_of(st.none(), values))
def test_not_regex_is_negation_of_regex(regex: str, label: str | None) -> None:
    """!~ is exactly the negation of =~, including for a missing label."""
    labels = {} if label is None else {"x": label}
    assert Matcher.create("x", "!~", regex).matches(labels) is (
        not Matcher.create("x", "=~", regex).matches(labels))


@settings(max_examples=1000)
@given(text=st.text(max_size=40))
def test_parser_raises_only_its_own_error(text: str) -> None:
    """Arbitrary text either parses or raises MatcherParseError — never anything else."""
    try:
        parse_matchers(text)
    except MatcherParseError:
        pass


matcher_chars = st.sampled_from([*list('ab{}=!~,"\\ \n=~é🙂(?s)[]*.+'), "(?i)", "=~", "!="])


@settings(max_examples=1000)
@given(parts=st.lists(matcher_chars, max_size=25))
def test_parser_raises_only_its_own_error_on_matcher_like_text(parts: list[str]) -> None:
    """Text built from matcher syntax characters never crashes the parser."""
    try:
        parse_matchers("".join(parts))
    except MatcherParseError:
        pass
