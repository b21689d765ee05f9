"""Route tree semantics (Alertmanager's): order, continue, inheritance, severity, channels."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from router.rules import RuleSet
from tests.rules.helpers import load_text

TREE = """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  group_by: [alertname]
  owner: root-owner
  routes:
    - name: db
      matchers: ['team="db"']
      audiences: [b]
      group_by: ['...']
      routes:
        - name: db-critical
          matchers: ['severity=~"critical|page"']
          audiences: [c]
    - name: all-prod
      matchers: ['env="prod"']
      continue: true
      audiences: [c]
    - name: prod-web
      matchers: ['env="prod"', 'service=~"web.*"']
      audiences: [d]
      owner: web
    - name: never-after-prod-web
      matchers: ['env="prod"', 'service="web-1"']
      audiences: [b]
"""


def _ids(rules: RuleSet, labels: dict[str, str]) -> list[str]:
    """The positions (``root/0``) of the routes matched for ``labels``."""
    return [rules.routes[d.route_id].position for d in rules.evaluate(labels)]


def test_no_child_matches_parent_is_the_match(tmp_path: Path) -> None:
    """An alert no child matches is decided by the root."""
    rules = load_text(tmp_path, TREE)
    assert _ids(rules, {"alertname": "X"}) == ["root"]


def test_first_matching_child_without_continue_stops_siblings(tmp_path: Path) -> None:
    """db matches and has no continue, so later siblings are not evaluated."""
    rules = load_text(tmp_path, TREE)
    assert _ids(rules, {"team": "db", "env": "prod"}) == ["root/0"]


def test_deepest_match_wins_in_a_branch(tmp_path: Path) -> None:
    """A matching grandchild replaces its parent as the match."""
    rules = load_text(tmp_path, TREE)
    assert _ids(rules, {"team": "db", "severity": "page"}) == ["root/0/0"]


def test_continue_lets_later_siblings_match(tmp_path: Path) -> None:
    """all-prod continues, prod-web matches next and stops never-after-prod-web."""
    rules = load_text(tmp_path, TREE)
    assert _ids(rules, {"env": "prod", "service": "web-1"}) == ["root/1", "root/2"]
    assert _ids(rules, {"env": "prod"}) == ["root/1"]


def test_settings_inherit_downwards(tmp_path: Path) -> None:
    """Children inherit template, channels, owner and group_by unless they override them."""
    rules = load_text(tmp_path, TREE)
    (d,) = rules.evaluate({"team": "db", "severity": "critical"})
    assert d.audiences == ("c",)
    assert d.group_by_all is True and d.group_by == ()
    assert d.owner == "root-owner"
    assert d.template == "t" and d.channels == ("email",)
    (w,) = [x for x in rules.evaluate({"env": "prod", "service": "web"})
            if x.route_id == "prod-web"]
    assert w.owner == "web" and w.group_by == ("alertname",)


def test_regex_anchoring_in_routes(tmp_path: Path) -> None:
    """'web.*' matches 'web-1' but 'critical|page' does not match 'critical-ish'."""
    rules = load_text(tmp_path, TREE)
    assert _ids(rules, {"team": "db", "severity": "critical-ish"}) == ["root/0"]


def test_missing_label_matches_as_empty(tmp_path: Path) -> None:
    """team!="db" matches an alert without a team label; team="" does too."""
    rules = load_text(tmp_path, """\
        route:
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - matchers: ['team!="db"', 'env=""']
              audiences: [b]
        """)
    assert _ids(rules, {"alertname": "X"}) == ["root/0"]
    assert _ids(rules, {"env": "prod"}) == ["root"]


def test_severity_from_label_with_map_and_default(tmp_path: Path) -> None:
    """Severity maps the label value; unknown or missing values take the default."""
    rules = load_text(tmp_path, """\
        route:
          audiences: [a]
          template: t
          severity: {label: severity, map: {page: critical, warning: warning}, default: info}
          channels: {critical: [email], default: []}
        """)
    (d,) = rules.evaluate({"severity": "page"})
    assert (d.severity, d.channels) == ("critical", ("email",))
    (d,) = rules.evaluate({"severity": "bogus"})
    assert (d.severity, d.channels) == ("info", ())


def test_fixed_severity_and_yaml_typing(tmp_path: Path) -> None:
    """match values stay strings (2, 10:00, yes) as in Alertmanager; fixed severity applies."""
    rules = load_text(tmp_path, """\
        route:
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - match: {test: 2, at: 10:00, kafka: yes}
              severity: critical
        """)
    (d,) = rules.evaluate({"test": "2", "at": "10:00", "kafka": "yes"})
    assert (rules.routes[d.route_id].position, d.severity) == ("root/0", "critical")
    assert _ids(rules, {"test": "2", "at": "600", "kafka": "yes"}) == ["root"]


def test_explain_uses_the_same_walk(tmp_path: Path) -> None:
    """RuleSet.explain reports matched/failed matchers and skipped siblings."""
    rules = load_text(tmp_path, TREE)
    traces, decisions = rules.explain({"team": "db"})
    assert [d.route_id for d in decisions] == ["db"]
    by_id = {t.route.position: t for t in traces}
    assert by_id["root/0"].selected and by_id["root/0"].matched
    assert by_id["root/0/0"].matchers[0].ok is False
    assert by_id["root/1"].skipped_reason is not None
    assert "root/0" in by_id["root/1"].skipped_reason


# ---------------------------------------------------------------- index == naive

LABEL_VALUES = ["", "a", "b", "c", "A", "ab", "ac"]
matcher_st = st.tuples(st.sampled_from(["x", "y", "z"]),
                       st.sampled_from(["=", "!=", "=~", "!~"]),
                       st.sampled_from(["a", "b", "", "a|b", "a.*", ".*", ".+", "(?i)a",
                                        "[bc]", "a(b|c)?"]))


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> str:
    """A random route subtree as YAML lines (children of the current node)."""
    lines: list[str] = []
    pad = "  " * (depth + 1)
    for _ in range(draw(st.integers(0, 4 if depth < 2 else 0))):
        ms = draw(st.lists(matcher_st, max_size=2))
        lines.append(f"{pad}- audiences: [{draw(st.sampled_from('abc'))}]")
        if ms:
            rendered = ", ".join(f"'{n}{op}\"{v}\"'" for n, op, v in ms)
            lines.append(f"{pad}  matchers: [{rendered}]")
        if draw(st.booleans()):
            lines.append(f"{pad}  continue: true")
        sub = draw(trees(depth + 2))
        if sub:
            lines.append(f"{pad}  routes:")
            lines.append(sub)
    return "\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(body=trees(), alerts=st.lists(st.fixed_dictionaries(
    {}, optional={k: st.sampled_from(LABEL_VALUES) for k in "xyz"}), min_size=1, max_size=8))
def test_indexed_evaluation_equals_naive(body: str,
                                         alerts: list[dict[str, str]]) -> None:
    """The indexed evaluator (literal index + regex screens) equals the naive one."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        route = ("route:\n  audiences: [a]\n  template: t\n  channels: {default: [email]}\n")
        if body:
            route += "  routes:\n" + body + "\n"
        rules = load_text(Path(folder), route)
    for labels in alerts:
        assert rules.evaluate(labels) == rules.evaluate_naive(labels)


def test_regex_screen_skips_non_matching_regex_children(tmp_path: Path) -> None:
    """Regex-keyed children are screened together yet give the naive result, flags included."""
    # 'a)|(b' is Alertmanager's ^(?:a)|(?:b)$: starts with a, or ends with b.
    rules = load_text(tmp_path, """\
        route:
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - {matchers: ['ns=~"team-a-.*"'], audiences: [b]}
            - {matchers: ['ns=~"(?i)TEAM-B-.*"'], audiences: [c]}
            - {matchers: ['ns=~"x)|(b"'], audiences: [d]}
        """)
    index = rules.root.index
    assert index is not None
    (screen,) = index.screens
    assert (screen.label, screen.members, index.unindexed) == ("ns", (0, 1, 2), ())
    for ns, audience in (("team-a-1", "b"), ("team-b-x", "c"), ("xy", "d"), ("ab", "d"),
                         ("", "a"), ("other", "a"), ("yx", "a")):
        labels = {"ns": ns}
        assert rules.evaluate(labels) == rules.evaluate_naive(labels)
        assert rules.evaluate(labels)[0].audiences == (audience,), ns


def test_regex_children_too_large_to_screen_together_are_checked_one_by_one(
        tmp_path: Path) -> None:
    """When RE2 cannot hold the union of the regex keys, those children stay unindexed."""
    routes = "\n".join(f"    - {{matchers: ['ns=~\"{i}\\\\pL{{250}}\"'], audiences: [b]}}"
                       for i in range(6))
    rules = load_text(tmp_path, "route:\n  audiences: [a]\n  template: t\n"
                      "  channels: {default: [email]}\n  routes:\n" + routes + "\n")
    index = rules.root.index
    assert index is not None
    assert (index.screens, index.unindexed) == ((), (0, 1, 2, 3, 4, 5))
    for labels in ({"ns": "3" + "é" * 250}, {"ns": "3" + "é" * 249}, {}):
        assert rules.evaluate(labels) == rules.evaluate_naive(labels)
    assert rules.evaluate({"ns": "3" + "é" * 250})[0].audiences == ("b",)


IDENTITY_TREE = """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  routes:
{inserted}    - name: db
      matchers: ['team="db"']
      routes:
        - matchers: ['severity=~"critical|page"', 'env="prod"']
    - match: {service: web}
      continue: true
    - matchers: ['service="web"']
"""


def test_route_identity_is_the_name_else_the_matchers_path(tmp_path: Path) -> None:
    """Named routes are known by name, unnamed ones by their sorted matchers path from the
    root; unnamed twins are told apart by their rank among themselves."""
    rules = load_text(tmp_path, IDENTITY_TREE.replace("{inserted}", ""))
    assert [(r.position, r.route_id) for r in rules.routes.values()] == [
        ("root", "{}"),
        ("root/0", "db"),
        ("root/0/0", '{}/{team="db"}/{env="prod",severity=~"critical|page"}'),
        ("root/1", '{}/{service="web"}'),
        ("root/2", '{}/{service="web"}/1'),
    ]


def test_route_identity_survives_a_route_inserted_above(tmp_path: Path) -> None:
    """Inserting a sibling first changes positions, never identities.

    Reproducer: route ids were positions (root/0 → root/1), so the incidents keyed by them
    were orphaned by the edit.
    """
    before = load_text(tmp_path, IDENTITY_TREE.replace("{inserted}", ""))
    after = load_text(tmp_path, IDENTITY_TREE.replace(
        "{inserted}", "    - {name: first, matchers: ['x=\"1\"']}\n"))
    assert set(before.routes) < set(after.routes)
    assert [r.position for r in (before.routes["db"], after.routes["db"])] == [
        "root/0", "root/1"]
    labels = {"team": "db", "severity": "page", "env": "prod"}
    assert [d.route_id for d in before.evaluate(labels)] == [
        d.route_id for d in after.evaluate(labels)]
