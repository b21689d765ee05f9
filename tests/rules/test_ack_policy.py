"""A route's ``ack:`` block: inheritance, opt-out, the built AckPolicy, checks, explain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.authoring.explain import explain_alert, format_text
from router.errors import RuleError
from router.incidents.state import decision_from_json, decision_to_json
from router.models import AckPolicy, EscalationTier, IncidentPolicy, RouteDecision
from router.rules import load_rules
from router.rules.ack_policy import duration_text, tier_channels
from tests.rules.helpers import HEADER, by_position, load_text

RULES = Path(__file__).parents[2] / "rules"

TREE = """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  ack:
    mode: first
    resend_after: 10m
    max_resends: 3
    escalate:
      - {after: 20m, audiences: [b], channels: {critical: [email], default: [email]}}
      - {after: 1h, audiences: [c, d]}
    notify_on_ack: true
  routes:
    - matchers: ['x="inherit"']
    - matchers: ['x="merge"']
      ack: {mode: each, max_resends: 1}
      routes:
        - matchers: ['y="grandchild"']
    - matchers: ['x="replace-tiers"']
      ack:
        escalate: [{after: 5m, audiences: [c]}]
    - matchers: ['x="off"']
      ack: false
      routes:
        - matchers: ['y="inherits-off"']
        - matchers: ['y="on-again"']
          ack: true
        - matchers: ['y="own"']
          ack: {resend_after: 2m}
    - matchers: ['x="none-given"']
      ack:
"""

PARENT = AckPolicy(
    mode="first", resend_after_s=600.0, max_resends=3,
    escalate=(EscalationTier(after_s=1200.0, audiences=("b",),
                             channels=(("critical", ("email",)), ("default", ("email",)))),
              EscalationTier(after_s=3600.0, audiences=("c", "d"))),
    notify_on_ack=True)


@pytest.fixture
def routes(tmp_path: Path) -> dict[str, IncidentPolicy]:
    rules = load_text(tmp_path, TREE)
    return {pos: r.policy for pos, r in by_position(rules).items()}


def test_root_block_is_built_into_the_policy(routes: dict[str, IncidentPolicy]) -> None:
    """Every key of the root's ack: lands in its AckPolicy (durations in seconds)."""
    assert routes["root"].ack == PARENT


def test_child_without_ack_inherits(routes: dict[str, IncidentPolicy]) -> None:
    """A route without ack: has its parent's policy, like the other route settings."""
    assert routes["root/0"].ack == PARENT


def test_child_block_merges_per_key(routes: dict[str, IncidentPolicy]) -> None:
    """A child's ack: overrides only the keys it writes; its own children inherit that."""
    merged = replace(PARENT, mode="each", max_resends=1)
    assert routes["root/1"].ack == merged
    assert routes["root/1/0"].ack == merged


def test_escalate_list_is_replaced_as_a_whole(routes: dict[str, IncidentPolicy]) -> None:
    """escalate is one key: a child's list replaces the parent's tiers."""
    ack = routes["root/2"].ack
    assert ack is not None
    assert ack.escalate == (EscalationTier(after_s=300.0, audiences=("c",)),)
    assert ack.resend_after_s == 600.0


def test_ack_false_opts_out_for_the_subtree(routes: dict[str, IncidentPolicy]) -> None:
    """ack: false switches acknowledgements off for the route and those below it."""
    assert routes["root/3"].ack is None
    assert routes["root/3/0"].ack is None


def test_ack_under_an_opt_out_starts_from_the_defaults(
        routes: dict[str, IncidentPolicy]) -> None:
    """Below ack: false, ack: true is the defaults, a mapping is merged over them."""
    assert routes["root/3/1"].ack == AckPolicy()
    assert routes["root/3/2"].ack == AckPolicy(resend_after_s=120.0)


@pytest.mark.parametrize(("word", "on"), [("false", False), ("no", False), ("off", False),
                                          ("true", True), ("yes", True)])
def test_switch_words_read_like_other_booleans(tmp_path: Path, word: str, on: bool) -> None:
    """ack: takes the boolean words `continue:` takes."""
    rules = load_text(tmp_path, "route: {audiences: [a], template: t, "
                      f"channels: {{default: [email]}}, ack: {word}}}\n")
    assert (rules.root.policy.ack is not None) is on


def test_empty_ack_inherits(routes: dict[str, IncidentPolicy]) -> None:
    """An empty ack: (YAML null) is the same as no ack: at all."""
    assert routes["root/4"].ack == PARENT


def test_no_ack_anywhere_asks_for_no_answer(tmp_path: Path) -> None:
    """Without ack: in the tree, no route's policy asks for an answer."""
    rules = load_text(tmp_path, "route: {audiences: [a], template: t, "
                      "channels: {default: [email]}}\n")
    assert rules.root.policy.ack is None


def test_decisions_carry_the_policy(tmp_path: Path) -> None:
    """The route decision of a matched alert carries the effective ack policy."""
    rules = load_text(tmp_path, TREE)
    (d,) = rules.evaluate({"x": "merge"})
    assert d.policy.ack == replace(PARENT, mode="each", max_resends=1)


def _decision(ack: AckPolicy | None) -> RouteDecision:
    return RouteDecision(route_id="billing", route_name="billing", severity="critical",
                         audiences=("a",), channels=("sms", "email"), template="t",
                         group_by=("alertname",), group_by_all=False, owner="o",
                         policy=IncidentPolicy(follow_up_after_s=60.0, ack=ack),
                         fallback={"sms": "email"})


@pytest.mark.parametrize("ack", [PARENT, AckPolicy(), None], ids=["tiers", "default", "none"])
def test_decision_json_round_trip(ack: AckPolicy | None) -> None:
    """decision_from_json(decision_to_json(d)) == d, nested tiers and tuples included."""
    decision = _decision(ack)
    back = decision_from_json(decision_to_json(decision))
    assert back == decision
    if ack is not None and ack.escalate:
        assert back.policy.ack is not None
        assert isinstance(back.policy.ack.escalate[0].channels[0][1], tuple)


def test_decision_json_written_before_acks_reads_back() -> None:
    """A snapshot stored before the ack key existed reads back with no ack policy."""
    text = decision_to_json(_decision(None)).replace(',"ack":null', "")
    assert '"ack"' not in text
    assert decision_from_json(text).policy.ack is None


def test_tier_channels_pick_like_a_route() -> None:
    """A tier's channels: the severity's list, else default, else the route's channels."""
    tier = PARENT.escalate[0]
    assert tier_channels(tier, "critical", ("sms",)) == ("email",)
    assert tier_channels(tier, "warning", ("sms",)) == ("email",)
    assert tier_channels(PARENT.escalate[1], "warning", ("sms", "push")) == ("sms", "push")


def test_duration_text_reads_like_the_rule_file() -> None:
    """Durations in explanations and messages are written as in rule files."""
    assert [duration_text(s) for s in (600, 5400, 90061, 0.5)] == ["10m", "1h30m",
                                                                    "1d1h1m1s", "0.5s"]


def test_sms_warning_is_given_once(tmp_path: Path) -> None:
    """Ack-requesting routes that send SMS get one warning about two-way numbers."""
    header = """\
audiences:
  a: {contacts: [{id: a, name: A, phone: "+33612345678"}]}
templates:
  t:
    sms:
      en: {text: "{{ ack.code }}"}
"""
    rules = load_text(tmp_path, """\
route:
  audiences: [a]
  template: t
  channels: {default: [sms]}
  ack: {resend_after: 5m}
  routes:
    - matchers: ['x="1"']
    - matchers: ['x="2"']
""", header=header)
    notes = [w for w in rules.warnings if "two-way SMS" in w.message]
    assert len(notes) == 1
    assert "sender ID cannot receive them" in notes[0].message


def test_no_sms_warning_without_sms(tmp_path: Path) -> None:
    """A route that asks for an answer by e-mail only gets no SMS warning."""
    rules = load_text(tmp_path, TREE)
    assert not [w for w in rules.warnings if "two-way SMS" in w.message]


def test_an_escalation_variant_covers_the_tier_channel(tmp_path: Path) -> None:
    """A tier may page on a channel only `t.escalation` has messages for."""
    header = HEADER.replace("a: {contacts: [{id: a, name: A, email: a@example.com}]}",
                            'a: {contacts: [{id: a, name: A, email: a@example.com, '
                            'phone: "+33612345678"}]}') + """\
  t.escalation:
    sms:
      en: {text: "ESCALATED {{ ack.code }}"}
"""
    rules = load_text(tmp_path, """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  ack:
    escalate: [{after: 20m, audiences: [b], channels: {default: [sms]}}]
""", header=header)
    assert rules.root.policy.ack is not None


def test_topic_only_route_cannot_be_answered(tmp_path: Path) -> None:
    """A route that asks for an answer but sends only to topics gets a warning."""
    header = """\
audiences:
  status: {contacts: [{id: s, name: S, topic: "arn:aws:sns:eu-west-1:123456789012:status"}]}
templates:
  t:
    topic:
      en: {text: "{{ ack.code }}"}
"""
    rules = load_text(tmp_path, "route: {audiences: [status], template: t, "
                      "channels: {default: [topic]}, ack: true}\n", header=header)
    (warning,) = rules.warnings
    assert "sends only on topic, which cannot be answered" in warning.message


def test_tier_audiences_are_checked_with_positions(tmp_path: Path) -> None:
    """An unknown tier audience is an error with its position, wherever the route is."""
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, """\
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  routes:
    - matchers: ['x="1"']
      ack:
        escalate: [{after: 20m, audiences: [zz]}]
""")
    (problem,) = info.value.problems
    assert (problem.line, problem.message) == (
        HEADER.count("\n") + 8, "unknown audience 'zz' in escalation tier 1")


def test_shipped_rules_ask_for_an_answer_on_billing() -> None:
    """rules/: billing asks for an answer, escalates to ops after 20 min; customers not."""
    rules = load_rules([RULES])
    (billing,) = rules.evaluate({"service": "billing", "severity": "page"})
    assert billing.policy.ack is not None
    assert billing.policy.ack.escalate[0].audiences == ("ops",)
    (customers,) = rules.evaluate({"audience": "customers", "crisis": "outage"})
    assert customers.policy.ack is None


def test_explain_shows_the_ack_policy() -> None:
    """rules explain: the route's ack policy in the JSON and in words."""
    rules = load_rules([RULES])
    doc = explain_alert(rules, {"alertname": "BillingDown", "service": "billing",
                                "severity": "page"}, {},
                        now=datetime(2024, 5, 2, 14, 3, tzinfo=UTC))
    (route,) = doc["matched_routes"]
    assert route["ack"] == {
        "mode": "first", "resend_after": "10m", "resend_after_s": 600.0, "max_resends": 2,
        "escalate": [{"after": "20m", "after_s": 1200.0, "audiences": ["ops"],
                      "channels": {"default": ["email"]}}],
        "notify_on_ack": True}
    text = format_text(doc)
    assert "ack: mode first: the first answer stops reminders and escalation" in text
    assert "reminder every 10m to those who have not answered, at most 2 (+10m, +20m" in text
    assert "escalation tier 1 at +20m unless answered: ops (default: email)" in text


def test_explain_without_ack_says_nothing_of_it() -> None:
    """A route that asks for no answer has ack null and no ack lines."""
    rules = load_rules([RULES])
    doc = explain_alert(rules, {"alertname": "HostDown"}, {},
                        now=datetime(2024, 5, 2, 14, 3, tzinfo=UTC))
    (route,) = doc["matched_routes"]
    assert route["ack"] is None
    assert "ack: mode" not in format_text(doc)
