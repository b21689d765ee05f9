"""The planner: decisions × audiences × contacts × channels → deliveries with keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from router.models import Alert, Contact, IntakeRecord, Phase, RenderedMessage, RouteDecision
from router.planner import idempotency_key, plan, recipient_address
from router.rules import RenderError, load_rules
from tests.store.factories import T0, make_alert, make_record

REPO = Path(__file__).resolve().parents[1]

ALICE = Contact(id="alice", name="Alice", email="alice@example.com", locale="fr")
BOB = Contact(id="bob", name="Bob", email="bob@example.com")
NOMAIL = Contact(id="carol", name="Carol", phone="+33612345678")
ALIAS = Contact(id="alice-2", name="Alice again", email="alice@example.com")


@dataclass(frozen=True)
class Audience:
    contacts: tuple[Contact, ...]


@dataclass
class HandRules:
    """A hand-built rule view: audiences plus a render that records its calls."""

    audiences: Mapping[str, Audience]
    fail_for: set[str] = field(default_factory=set)  # contact ids whose render fails
    rendered: list[tuple[str, str, str, Phase]] = field(default_factory=list)

    def render(self, decision: RouteDecision, alert: Alert, contact: Contact, channel: str,
               phase: Phase, meta: Mapping[str, str]) -> RenderedMessage:
        if contact.id in self.fail_for:
            raise RenderError("'dict object' has no attribute 'nope'")
        self.rendered.append((decision.route_id, contact.id, channel, phase))
        return RenderedMessage(subject=f"{phase} {alert.labels['alertname']} {contact.locale}",
                               text=f"for {contact.name}", html=None)


RULES = HandRules({"ops": Audience((ALICE, BOB)), "fr": Audience((ALICE, NOMAIL, ALIAS))})


def decision(route_id: str = "root", audiences: tuple[str, ...] = ("ops",),
             channels: tuple[str, ...] = ("email",)) -> RouteDecision:
    return RouteDecision(route_id=route_id, route_name=None, severity="critical",
                         audiences=audiences, channels=channels, template="default",
                         group_by=("alertname",), group_by_all=False)


def test_one_delivery_per_contact_and_channel() -> None:
    """Each contact of each audience gets one delivery per reachable channel."""
    record = make_record("HostDown", instance="a")
    planned = plan(record, [decision()], RULES)
    assert [(d.recipient, d.contact_id, d.audience) for d in planned] == [
        ("alice@example.com", "alice", "ops"), ("bob@example.com", "bob", "ops")]
    first = planned[0]
    assert first.phase == "firing"
    assert first.incident_key == first.fingerprint == record.alert.fingerprint
    assert (first.route_id, first.channel, first.severity, first.locale) == (
        "root", "email", "critical", "fr")
    assert first.message.subject == "firing HostDown fr"
    assert first.failed_reason is None


def test_same_alert_state_gives_same_keys() -> None:
    """Two receptions of one alert state (HA pair, retried webhook) plan identical keys."""
    one = make_record("HostDown", instance="a")
    other = replace(one, received_at=T0 + timedelta(seconds=30), meta={"receiver": "other"})
    keys = [d.idempotency_key for d in plan(one, [decision()], RULES)]
    assert keys == [d.idempotency_key for d in plan(other, [decision()], RULES)]
    assert len(set(keys)) == 2


def test_new_phase_or_new_start_gives_new_keys() -> None:
    """Resolved differs from firing, and a re-fire (new startsAt) differs from both."""
    firing = make_record("HostDown")
    resolved = replace(firing, alert=replace(firing.alert, status="resolved"))
    refire = replace(firing, alert=replace(firing.alert,
                                           starts_at=T0 + timedelta(hours=1)))
    keys = [plan(r, [decision()], RULES)[0].idempotency_key
            for r in (firing, resolved, refire)]
    assert len(set(keys)) == 3
    assert plan(resolved, [decision()], RULES)[0].phase == "resolved"


def test_key_covers_route_channel_and_recipient() -> None:
    """The key changes with each of route, channel and recipient; it ignores time zones."""
    args = ("root", "fp", T0, "firing", "email", "a@x.org")
    base = idempotency_key(*args)  # type: ignore[arg-type]
    assert idempotency_key("root/0", *args[1:]) != base  # type: ignore[arg-type]
    assert idempotency_key(*args[:4], "sms", "a@x.org") != base  # type: ignore[arg-type]
    assert idempotency_key(*args[:5], "b@x.org") != base  # type: ignore[arg-type]
    from zoneinfo import ZoneInfo

    same_instant = T0.astimezone(ZoneInfo("Europe/Paris"))
    assert idempotency_key("root", "fp", same_instant, "firing", "email", "a@x.org") == base


def test_contact_in_two_audiences_gets_one_message() -> None:
    """Dedup by recipient address within a decision: two audiences, one email each."""
    planned = plan(make_record(), [decision(audiences=("ops", "fr"))], RULES)
    assert sorted(d.recipient for d in planned) == ["alice@example.com", "bob@example.com"]


def test_two_matching_routes_each_plan_their_own() -> None:
    """Two decisions (a `continue` route and another) give one delivery each per contact."""
    planned = plan(make_record(), [decision("root/0"), decision("root/1")], RULES)
    assert len(planned) == 4
    assert len({d.idempotency_key for d in planned}) == 4


def test_contact_without_email_is_skipped_with_warning() -> None:
    """A contact lacking the channel's address is skipped and logged without personal data."""
    with capture_logs() as logs:
        planned = plan(make_record(), [decision(audiences=("fr",))], RULES)
    assert [d.contact_id for d in planned] == ["alice"]  # carol has no email; alias deduped
    (warning,) = [e for e in logs if e["event"] == "planner.contact_unreachable"]
    assert (warning["contact_id"], warning["channel"], warning["log_level"]) == (
        "carol", "email", "warning")
    assert "+33612345678" not in repr(logs)


def test_channel_without_addressing_is_skipped() -> None:
    """A channel the planner cannot address (unknown to it) plans nothing."""
    assert recipient_address(ALICE, "fax") is None
    assert plan(make_record(), [decision(channels=("fax",))], RULES) == []


def test_sms_topic_push_addresses() -> None:
    """sms goes to the phone, topic to the topic ARN, push to the contact id (not topics)."""
    topic = Contact(id="status", name="Status", topic="arn:aws:sns:us-east-1:123456789012:s")
    assert recipient_address(ALICE, "push") == "alice"
    assert recipient_address(topic, "topic") == topic.topic
    assert recipient_address(topic, "push") is None
    assert recipient_address(topic, "sms") is None


def test_render_failure_becomes_a_failed_delivery() -> None:
    """A template error is recorded as a failed delivery with the reason, not lost."""
    rules = HandRules({"ops": Audience((ALICE, BOB))}, fail_for={"bob"})
    with capture_logs() as logs:
        planned = plan(make_record("DiskFull"), [decision()], rules)
    ok, failed = planned
    assert ok.failed_reason is None
    assert failed.recipient == "bob@example.com"
    assert failed.failed_reason is not None
    assert "template 'default' failed to render for email" in failed.failed_reason
    assert "no attribute 'nope'" in failed.failed_reason
    (entry,) = [e for e in logs if e["event"] == "planner.render_failed"]
    assert entry["recipient"] == "b***@e***.com"


def test_unknown_audience_is_skipped() -> None:
    """A decision naming an audience the rules lack plans nothing for it (and warns)."""
    with capture_logs() as logs:
        assert plan(make_record(), [decision(audiences=("ghost",))], RULES) == []
    assert [e["event"] for e in logs] == ["planner.unknown_audience"]


def test_with_the_shipped_rules_in_french() -> None:
    """With rules/ loaded for real, a billing alert goes to the French on-call in French."""
    rules = load_rules([REPO / "rules"])
    alert = make_alert("PaymentsDown", service="billing", severity="critical")
    record = IntakeRecord(source="alertmanager", received_at=T0, alert=alert)
    planned = [d for d in plan(record, rules.evaluate(alert.labels), rules)
               if d.channel == "email"]
    assert [(d.recipient, d.locale) for d in planned] == [("astreinte@example.fr", "fr")]
    assert "ALERTE" in planned[0].message.subject
    assert planned[0].message.html is not None
