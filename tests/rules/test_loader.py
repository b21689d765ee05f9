"""Rule loading: folders and merging, defaults, contacts, cross-checks, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.errors import RuleError
from router.rules import load_rules
from tests.rules.helpers import HEADER, load_text

ROUTE = """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
"""


def test_folder_merges_files_and_ignores_tests_subfolder(tmp_path: Path) -> None:
    """All *.yaml/*.yml directly in the folder are merged; tests/ is not part of the set."""
    (tmp_path / "a.yaml").write_text(HEADER, encoding="utf-8")
    (tmp_path / "b.yml").write_text(ROUTE, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not yaml: [", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "case.yaml").write_text("cases: []", encoding="utf-8")
    rules = load_rules([tmp_path])
    assert [p.name for p in rules.source_files] == ["a.yaml", "b.yml"]
    assert set(rules.audiences) == {"a", "b", "c", "d"}


def test_contact_defaults(tmp_path: Path) -> None:
    """Contacts without locale/timezone take the rule set's defaults."""
    header = "defaults: {locale: fr, timezone: Europe/Paris}\n" + HEADER.replace(
        "  t:\n    email:", "  t:\n    fallback_locale: en\n    email:")
    rules = load_text(tmp_path, ROUTE, header=header)
    a = rules.audiences["a"].contacts[0]
    assert (a.locale, a.timezone) == ("fr", "Europe/Paris")
    assert rules.default_locale == "fr"


def test_missing_route_is_an_error(tmp_path: Path) -> None:
    """A rule set without any route: tells the user one file must define it."""
    (tmp_path / "a.yaml").write_text(HEADER, encoding="utf-8")
    with pytest.raises(RuleError, match="no rule file defines 'route:'"):
        load_rules([tmp_path])


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    """A path that does not exist is reported, not ignored."""
    with pytest.raises(RuleError, match="no such file or directory"):
        load_rules([tmp_path / "nope.yaml"])


def test_route_without_audiences_anywhere(tmp_path: Path) -> None:
    """A route that can match but has no audiences (own or inherited) is an error."""
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, "route:\n  template: t\n  channels: {default: [email]}\n")
    assert [p.message for p in info.value.problems] == [
        "route root can match alerts but has no 'audiences': set it on this route or on a "
        "parent route"]


def test_leaves_may_carry_audiences_when_root_has_a_catch_all(tmp_path: Path) -> None:
    """The root needs no audiences when a catch-all child always takes over."""
    rules = load_text(tmp_path, """\
route:
  template: t
  channels: {default: [email]}
  routes:
    - matchers: [team=db]
      audiences: [b]
    - audiences: [a]
""")
    assert [d.audiences for d in rules.evaluate({})] == [("a",)]


def test_merge_keys_and_anchors(tmp_path: Path) -> None:
    """YAML anchors and merge keys work for sharing settings between routes."""
    rules = load_text(tmp_path, """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  routes:
    - &db
      matchers: [team=db]
      audiences: [b]
      owner: dba
    - <<: *db
      matchers: [team=dba]
""")
    (d,) = rules.evaluate({"team": "dba"})
    assert (d.route_id, d.audiences, d.owner) == ('{}/{team="dba"}', ("b",), "dba")


def test_template_missing_channel_used_by_route(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A route sending on a channel its template lacks is rejected."""
    import router.rules.loader as loader

    monkeypatch.setattr(loader, "_channel_kinds", lambda: frozenset({"email", "sms"}))
    with pytest.raises(RuleError, match="may send on 'sms' but template 't' has no 'sms'"):
        load_text(tmp_path, ROUTE.replace("{default: [email]}",
                                          "{default: [email], critical: [sms]}"))
