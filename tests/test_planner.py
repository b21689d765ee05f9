"""The one planner (router.incidents.flush.plan_flush) as rule tests see it: decisions ×
audiences × contacts × channels → outbox rows with keys, through the rehearsal that runs
the service's intake, incident engine and scheduler on a fake clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from router.authoring.rehearsal import Step, rehearse
from router.incidents.flush import notice_key, recipient_address
from router.models import Alert, Contact, Delivery
from router.rules import RuleSet, load_rules
from tests.store.factories import T0, make_alert

REPO = Path(__file__).resolve().parents[1]

ALICE = Contact(id="alice", name="Alice", email="alice@example.com", locale="fr")

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  ops:
    contacts:
      - {id: alice, name: Alice, email: alice@example.com, locale: fr}
      - {id: bob, name: Bob, email: bob@example.com}
  fr:
    contacts:
      - {id: alice, name: Alice, email: alice@example.com, locale: fr}
      - {id: carol, name: Carol, phone: "+33612345678"}
      - {id: alice-2, name: Alice again, email: alice@example.com}
templates:
  default:
    email:
      en: {subject: "{{ phase }} {{ alert.labels.alertname }} {{ recipient.locale }}",
           text: "for {{ recipient.name }}"}
      fr: {subject: "{{ phase }} {{ alert.labels.alertname }} {{ recipient.locale }}",
           text: "pour {{ recipient.name }}"}
    topic:
      en: {text: "{{ alert.labels.alertname }}"}
  broken:
    email:
      en: {subject: "{{ alert.labels.nope.deeper }}", text: "x"}
      fr: {subject: "ok", text: "x"}
route:
  audiences: [ops]
  template: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  severity: {label: severity, default: critical}
  channels: {default: [email]}
  routes:
    - name: both
      matchers: ['team="both"']
      audiences: [ops, fr]
    - name: french
      matchers: ['team="fr"']
      audiences: [fr]
    - name: topic
      matchers: ['team="topic"']
      channels: {default: [topic]}
    - name: broken
      matchers: ['team="broken"']
      template: broken
    - name: first
      matchers: ['team="two"']
      continue: true
    - name: second
      matchers: ['team="two"']
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("planner") / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    return load_rules([path])


def _first(rules: RuleSet, *alerts: Alert) -> list[Delivery]:
    [window] = rehearse(rules, [Step(T0, alerts)])
    return window


def test_one_delivery_per_contact_and_channel(rules: RuleSet) -> None:
    """Each contact of each audience gets one delivery per reachable channel."""
    alert = make_alert("HostDown", instance="a")
    planned = _first(rules, alert)
    assert [(d.recipient, d.contact_id, d.audience) for d in planned] == [
        ("alice@example.com", "alice", "ops"), ("bob@example.com", "bob", "ops")]
    first = planned[0]
    assert first.phase == "firing"
    assert first.fingerprint == alert.fingerprint
    assert first.incident_key.startswith("inc-")  # the incident, not the alert
    assert (first.route_id, first.channel, first.severity, first.locale) == (
        rules.root.route_id, "email", "critical", "fr")
    assert first.message.subject == "firing HostDown fr"
    # the rehearsal sends what is due, as a live dispatcher would
    assert first.status == "sent" and first.last_error is None
    assert first.created_at == T0 + timedelta(seconds=30)  # group_wait


def test_same_alert_state_gives_same_keys(rules: RuleSet) -> None:
    """One alert state received twice (HA pair, retried webhook) is told once, and a
    replay of the same life plans the same keys."""
    alert = make_alert("HostDown", instance="a")
    [once, twice] = rehearse(rules, [Step(T0, (alert,)), Step(T0 + timedelta(seconds=10),
                                                               (alert,))])
    assert once == [] and len(twice) == 2
    keys = [d.idempotency_key for d in twice]
    assert keys == [d.idempotency_key for d in _first(rules, alert)]
    assert len(set(keys)) == 2


def test_new_phase_or_new_start_gives_new_keys(rules: RuleSet) -> None:
    """Resolved differs from firing, and a re-fire (new startsAt) differs from both."""
    firing = make_alert("HostDown")
    resolve_at = T0 + timedelta(minutes=10)
    resolved = replace(firing, status="resolved", ends_at=resolve_at)
    refire_at = T0 + timedelta(hours=1)
    refire = replace(firing, starts_at=refire_at)
    windows = rehearse(rules, [Step(T0, (firing,)), Step(resolve_at, (resolved,)),
                               Step(refire_at, (refire,))])
    alice = [[d for d in w if d.contact_id == "alice"] for w in windows]
    assert [[d.phase for d in w] for w in alice] == [["firing"], ["resolved"], ["firing"]]
    keys = [w[0].idempotency_key for w in alice]
    assert len(set(keys)) == 3


def test_key_covers_incident_recipient_channel_phase_and_sequence() -> None:
    """The key changes with each of incident, audience, contact, channel, address, phase
    and notice number."""
    args = ("inc-1", "ops", "alice", "email", "a@x.org", "firing", 1)
    base = notice_key(*args)
    for i, other in enumerate(("inc-2", "fr", "bob", "sms", "b@x.org", "resolved", 2)):
        changed = list(args)
        changed[i] = other
        assert notice_key(*changed) != base  # type: ignore[arg-type]
    assert notice_key(*args) == base


def test_contact_in_two_audiences_gets_one_message(rules: RuleSet) -> None:
    """Dedup by recipient address within an incident: two audiences, one email each."""
    planned = _first(rules, make_alert("HostDown", team="both"))
    assert sorted(d.recipient for d in planned) == ["alice@example.com", "bob@example.com"]


def test_two_matching_routes_each_plan_their_own(rules: RuleSet) -> None:
    """Two decisions (a `continue` route and another) give one delivery each per contact."""
    planned = _first(rules, make_alert("HostDown", team="two"))
    assert len(planned) == 4
    assert sorted({d.route_id for d in planned}) == ["first", "second"]
    assert len({d.idempotency_key for d in planned}) == 4


def test_contact_without_email_is_skipped(rules: RuleSet) -> None:
    """A contact lacking the channel's address is skipped; an alias address is deduped."""
    planned = _first(rules, make_alert("HostDown", team="fr"))
    assert [d.contact_id for d in planned] == ["alice"]  # carol has no email; alias deduped


def test_channel_without_addressing_is_skipped(rules: RuleSet) -> None:
    """A channel the planner cannot address (unknown to it, or no contact has that
    address) plans nothing."""
    assert recipient_address(ALICE, "fax") is None
    assert _first(rules, make_alert("HostDown", team="topic")) == []


def test_sms_topic_push_addresses() -> None:
    """sms goes to the phone, topic to the topic ARN, push to the contact id (not topics)."""
    topic = Contact(id="status", name="Status", topic="arn:aws:sns:us-east-1:123456789012:s")
    assert recipient_address(ALICE, "push") == "alice"
    assert recipient_address(topic, "topic") == topic.topic
    assert recipient_address(topic, "push") is None
    assert recipient_address(topic, "sms") is None


def test_render_failure_becomes_a_failed_delivery(rules: RuleSet) -> None:
    """A template error is recorded as a failed delivery with the reason, not lost."""
    planned = _first(rules, make_alert("DiskFull", team="broken"))
    ok, failed = planned  # alice renders in French, bob's English subject fails
    assert ok.status == "sent" and ok.last_error is None  # the rehearsal sent it
    assert failed.recipient == "bob@example.com"
    assert failed.status == "failed" and failed.last_error is not None
    assert "template 'broken' failed to render for email" in failed.last_error
    assert "has no attribute 'deeper'" in failed.last_error
    assert failed.dead_letter_reason == "render"


def test_with_the_shipped_rules_in_french() -> None:
    """With rules/ loaded for real, a billing alert goes to the French on-call in French."""
    rules = load_rules([REPO / "rules"])
    alert = make_alert("PaymentsDown", service="billing", severity="critical")
    planned = [d for d in _first(rules, alert) if d.channel == "email"]
    assert [(d.recipient, d.locale) for d in planned] == [("astreinte@example.fr", "fr")]
    assert "ALERTE" in planned[0].message.subject
    assert planned[0].message.html is not None
