"""Acknowledgements in the incident flow: reminders, escalation tiers, answers, restarts.

A real store, the intake processor, the scheduler and the acknowledgement service, on a
fake clock. The route's ``ack:`` policy is built as an :class:`AckPolicy` and put on the
decisions the rules return (the rule-file syntax is tested with the rule loader).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.acks import AckBy, AckLinks, ack_code, verify_token
from router.app import create_app
from router.clock import FakeClock
from router.config import ServiceConfig
from router.http import ServiceState
from router.http.state import ACKNOWLEDGER
from router.incidents.acks import decide_ack
from router.models import AckPolicy, Delivery, EscalationTier, RouteDecision
from router.rules import RuleSet
from router.store import Store, open_store
from router.workers.acks import AckService
from tests.incidents.harness import T_MON_10, Harness, load, make_alert
from tests.store.impls import STORE_KINDS, store_url_for

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  oncall:
    contacts:
      - {id: alice, name: Alice, email: alice@example.com, phone: "+33612345601"}
      - {id: bob, name: Bob, email: bob@example.com, phone: "+33612345602"}
      - {id: carol, name: Carol, email: carol@example.com, phone: "+33612345603"}
  secondary:
    contacts:
      - {id: dave, name: Dave, email: dave@example.com, phone: "+33612345604"}
      - {id: bob2, name: Bob again, email: bob@example.com}
  managers:
    quiet_hours: nights
    contacts:
      - {id: erin, name: Erin, email: erin@example.com, timezone: Europe/Paris}
quiet_hours:
  nights:
    - times: [{start_time: "22:00", end_time: "08:00"}]
templates:
  default:
    email:
      en:
        subject: "{{ phase }} {{ alert.labels.alertname }}"
        text: >-
          ask={{ 'true' if ack.requested else '' }} code={{ ack.code }} url={{ ack.url or '' }}
          reminder={{ ack.reminder }} tier={{ ack.tier }} by={{ ack.by }}
    sms:
      en:
        text: "{{ phase }} {{ alert.labels.alertname }} YES {{ ack.code }}"
route:
  audiences: [oncall]
  template: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 24h
  severity: {label: severity, default: warning}
  channels: {default: [email]}
"""

POLICY = AckPolicy(
    mode="first", resend_after_s=600, max_resends=2, notify_on_ack=True,
    escalate=(EscalationTier(after_s=1200, audiences=("secondary",),
                             channels=(("default", ("sms", "email")),)),
              EscalationTier(after_s=2400, audiences=("managers",))))
FIRST = T_MON_10 + timedelta(seconds=30)  # the first notice (group_wait)


class AckRules:
    """The rule set, with ``policy`` as the ``ack:`` of every route it decides."""

    def __init__(self, rules: RuleSet, policy: AckPolicy) -> None:
        self._rules = rules
        self._policy = policy

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        return [replace(d, policy=replace(d.policy, ack=self._policy))
                for d in self._rules.evaluate(labels)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rules, name)


def harness(store: Store, tmp_path: Path, policy: AckPolicy = POLICY,
            clock: FakeClock | None = None) -> tuple[Harness, AckService]:
    rules: Any = AckRules(load(tmp_path, RULES), policy)
    h = Harness(store, rules, clock or FakeClock(T_MON_10))
    service = AckService(store, lambda: rules, wake=h.scheduler.notify)
    return h, service


def who(deliveries: list[Delivery]) -> set[tuple[str, str, str]]:
    return {(d.phase, d.contact_id, d.channel) for d in deliveries}


async def events(store: Store, incident: str, kind: str) -> list[dict[str, Any]]:
    detail = await store.get_incident(incident)
    assert detail is not None
    return [dict(e.detail) for e in detail.events if e.kind == kind]


async def fire(h: Harness) -> str:
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10, instance="db1"))
    first = await h.tick(30)
    assert who(first) == {("firing", c, "email") for c in ("alice", "bob", "carol")}
    return first[0].incident_key


async def test_nobody_answers_then_bob_answers_by_sms(store: Store, tmp_path: Path) -> None:
    """Reminder at +10m to all three, escalation at +20m to the second tier (its SMS and
    e-mail), then Bob's SMS answer: escalation stops, the others are told who took it."""
    h, service = harness(store, tmp_path)
    incident = await fire(h)
    code = ack_code(incident)
    first = await h.deliveries()
    assert all(f"ask=true code={code}" in d.message.text for d in first)

    assert await h.tick(599) == []
    reminders = await h.tick(1)
    assert who(reminders) == {("reminder", c, "email") for c in ("alice", "bob", "carol")}
    assert all("reminder=1" in d.message.text for d in reminders)

    assert await h.tick(599) == []
    at_20m = await h.tick(1)
    assert h.clock.now() == FIRST + timedelta(seconds=1200)
    # dave on the tier's channels (sms first); bob2 shares bob's address: paged once.
    assert who(at_20m) == ({("escalation", "dave", "sms"), ("escalation", "dave", "email")}
                           | {("reminder", c, "email") for c in ("alice", "bob", "carol")})
    sms = next(d for d in at_20m if d.channel == "sms")
    assert sms.message.text.strip() == f"escalation DiskFull YES {code}"
    assert sms.recipient == "+33612345604"
    assert [e["tier"] for e in await events(store, incident, "escalated")] == [1]
    assert [e["number"] for e in await events(store, incident, "reminder_sent")] == [1, 2]

    pending = await service.pending_for("sms", "+33612345602", h.clock.now())
    assert [(p.incident_id, p.code, p.contact_id) for p in pending] == [(incident, code, "bob")]
    result = await service.acknowledge(incident, by=AckBy("Bob", "bob"), channel="sms",
                                       at=h.clock.now() + timedelta(seconds=60))
    assert result.status == "acknowledged"
    told = await h.tick(60)
    assert who(told) == ({("acknowledged", c, "email") for c in ("alice", "carol", "dave")}
                         | {("acknowledged", "dave", "sms")})
    assert all("by=Bob" in d.message.text for d in told if d.channel == "email")
    assert await service.pending_for("sms", "+33612345601", h.clock.now()) == []

    # Nothing more: no third reminder (max 2 anyway), no second tier at +40m.
    assert await h.tick(3600) == []
    again = await service.acknowledge(incident, by=AckBy("Alice", "alice"), channel="link",
                                      at=h.clock.now())
    assert (again.status, again.acknowledged_by) == ("already", AckBy("Bob", "bob"))
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is not None
    assert (detail.summary.ack.by_id, detail.summary.ack.channel) == ("bob", "sms")
    assert detail.summary.escalation_tier == 1
    answered = {r.contact_id: r.answered_at is not None for r in detail.recipients}
    assert answered == {"alice": False, "bob": True, "carol": False, "dave": False}
    assert {r.contact_id: r.reminders for r in detail.recipients}["alice"] == 2
    [acked] = await events(store, incident, "acknowledged")
    assert (acked["by"], acked["contact_id"], acked["channel"]) == ("Bob", "bob", "sms")


async def test_second_tier_and_quiet_hours(store: Store, tmp_path: Path) -> None:
    """Nobody answers: the managers' tier is paged at +40m, held by Erin's quiet hours
    like a first notice (a warning does not break them)."""
    night = datetime.fromisoformat("2024-05-06T22:00:00+00:00")  # 00:00 in Paris
    h, _service = harness(store, tmp_path, clock=FakeClock(night))
    await h.receive(make_alert("DiskFull", starts_at=night))
    await h.tick(30)
    await h.tick(1200)
    tier2 = await h.tick(1200)
    erin = [d for d in tier2 if d.contact_id == "erin"]
    assert [(d.phase, d.next_attempt_at) for d in erin] == [
        ("escalation", datetime.fromisoformat("2024-05-07T06:00:00+00:00"))]


async def test_resolved_stops_reminders_and_escalation(store: Store, tmp_path: Path) -> None:
    """Resolved before anyone answered: resolved notices, then nothing more, no timer."""
    h, service = harness(store, tmp_path)
    h.send = True
    incident = await fire(h)
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10, status="resolved",
                               ends_at=FIRST + timedelta(seconds=60), instance="db1"))
    done = await h.tick(300)
    assert {d.phase for d in done} == {"resolved"}
    assert await h.tick(7200) == []
    assert await store.next_incident_due() is None
    assert await events(store, incident, "escalated") == []
    result = await service.acknowledge(incident, by=AckBy("Bob", "bob"), channel="api",
                                       at=h.clock.now())
    assert result.status == "resolved"


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_restart_between_reminder_and_escalation(kind: str, tmp_path: Path) -> None:
    """A new store and scheduler over the same database: the escalation once, at +20m;
    the reminder already sent is not sent again."""
    url = store_url_for(kind, tmp_path / "state.db")
    first = open_store(url)
    await first.start()
    h, _ = harness(first, tmp_path)
    incident = await fire(h)
    assert {d.phase for d in await h.tick(600)} == {"reminder"}
    await first.close()  # the process dies between the reminder and the escalation

    second = open_store(url)
    await second.start()
    try:
        h2, _ = harness(second, tmp_path, clock=FakeClock(h.clock.now() + timedelta(seconds=5)))
        assert await h2.tick(0) == []  # nothing re-planned after the restart
        assert await second.next_incident_due() == FIRST + timedelta(seconds=1200)
        at_20m = await h2.tick(595)
        assert sorted(d.contact_id for d in at_20m if d.phase == "escalation") == [
            "dave", "dave"]
        assert await h2.tick(0) == []
        all_rows = await h2.deliveries()
        assert sum(d.phase == "reminder" for d in all_rows) == 6  # 3 × reminder 1, 3 × 2
        assert sum(d.phase == "escalation" for d in all_rows) == 2  # dave: sms + email
        assert [e["tier"] for e in await events(second, incident, "escalated")] == [1]
    finally:
        await second.close()


async def test_mode_each_reminds_each_until_they_answer(store: Store, tmp_path: Path) -> None:
    """Mode each: an answer stops that recipient's reminders and the escalation; the
    incident is acknowledged with the last answer."""
    policy = replace(POLICY, mode="each")
    h, service = harness(store, tmp_path, policy)
    incident = await fire(h)
    await service.acknowledge(incident, by=AckBy("Alice", "alice"), channel="link",
                              at=h.clock.now())
    reminders = await h.tick(600)
    assert who(reminders) == {("reminder", c, "email") for c in ("bob", "carol")}
    at_20m = await h.tick(600)  # the second reminder; no escalation: someone answered
    assert who(at_20m) == {("reminder", c, "email") for c in ("bob", "carol")}
    result = await service.acknowledge(incident, by=AckBy("Bob", "bob"), channel="sms",
                                       at=h.clock.now())
    assert result.status == "acknowledged"
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is None  # carol has not answered
    again = await service.acknowledge(incident, by=AckBy("Bob", "bob"), channel="sms",
                                      at=h.clock.now())
    assert again.status == "already"
    await service.acknowledge(incident, by=AckBy("Carol", "carol"), channel="sms",
                              at=h.clock.now())
    detail = await store.get_incident(incident)
    assert detail is not None and detail.summary.ack is not None
    assert detail.summary.ack.by_id == "carol"
    assert await h.tick(3600) == []  # all answered: nothing more (no acknowledged notice)


async def test_answer_before_the_first_reminder_stops_everything(store: Store,
                                                                 tmp_path: Path) -> None:
    """An operator acknowledges at +1m (API): no reminder, no escalation; everybody
    paged is told who took it."""
    h, service = harness(store, tmp_path)
    incident = await fire(h)
    result = await service.acknowledge(incident, by=AckBy("ops desk"), channel="api",
                                       at=h.clock.now() + timedelta(seconds=60))
    assert (result.status, result.ack_channel) == ("acknowledged", "api")
    told = await h.tick(60)
    assert who(told) == {("acknowledged", c, "email") for c in ("alice", "bob", "carol")}
    assert await h.tick(7200) == []


async def test_links_in_notices_asking(store: Store, tmp_path: Path) -> None:
    """With links configured, each notice asking carries the contact's own signed link."""
    rules: Any = AckRules(load(tmp_path, RULES), POLICY)
    h = Harness(store, rules, FakeClock(T_MON_10))
    key = b"k" * 32
    h.scheduler._ack_links = AckLinks("https://tocsin.example.com", key)
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    for delivery in await h.tick(30):
        url = delivery.message.text.split("url=")[1].split()[0]
        token = url.rsplit("/", 1)[1]
        grant = verify_token(key, token, h.clock.now())
        assert (grant.incident_id, grant.contact_id) == (delivery.incident_key,
                                                         delivery.contact_id)


async def test_without_policy_nothing_asks(store: Store, tmp_path: Path) -> None:
    """A route without ``ack:``: notices ask nothing, an answer is ``not_asked``."""
    rules = load(tmp_path, RULES)
    h = Harness(store, rules, FakeClock(T_MON_10))
    service = AckService(store, lambda: rules)
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    first = await h.tick(30)
    assert all("ask= code=" in d.message.text for d in first)
    assert await h.tick(3600) == []
    result = await service.acknowledge(first[0].incident_key, by=AckBy("Bob", "bob"),
                                       channel="sms", at=h.clock.now())
    assert result.status == "not_asked"
    missing = await service.acknowledge("inc-0000", by=AckBy("Bob", "bob"), channel="sms",
                                        at=h.clock.now())
    assert missing.status == "not_found"


async def test_opt_out_and_reply(store: Store, tmp_path: Path) -> None:
    """An opt-out is recorded and names the contacts; a reply is one SMS in the outbox."""
    h, service = harness(store, tmp_path)
    await fire(h)
    assert await service.record_opt_out("+33612345603", "STOP", h.clock.now()) == ["carol"]
    assert await service.record_opt_out("+33600000000", "ARRET", h.clock.now()) == []
    assert [o.keyword for o in await store.opt_outs("+33612345603")] == ["STOP"]
    await service.send_reply("+33612345603", "Reply YES 1234 or YES 5678", h.clock.now())
    replies = await store.list_deliveries(phase="reply")
    assert [(d.channel, d.recipient, d.contact_id, d.message.text) for d in replies] == [
        ("sms", "+33612345603", "carol", "Reply YES 1234 or YES 5678")]


@pytest.mark.parametrize("mode", ["first", "each"])
async def test_decision_is_idempotent(mode: str, store: Store, tmp_path: Path) -> None:
    """The same answer twice: the second is ``already`` and writes nothing."""
    h, service = harness(store, tmp_path, replace(POLICY, mode=mode))  # type: ignore[arg-type]
    incident = await fire(h)
    by = AckBy("Bob", "bob")
    assert (await service.acknowledge(incident, by=by, channel="sms",
                                      at=h.clock.now())).status == "acknowledged"
    snapshot = await store.load_incident(incident, h.clock.now(), lambda _l: [], None)
    assert snapshot is not None
    second = decide_ack(snapshot.incident, snapshot.logs, by=by, channel="sms",
                        at=h.clock.now())
    assert second.result.status == "already" and second.change is None


async def test_visible_in_the_incident_json(store: Store, tmp_path: Path) -> None:
    """The service the app wires (app[ACKNOWLEDGER]) acknowledges; the incident JSON shows
    who, when, how and each recipient's answer; the timeline and the deliveries filter
    show the steps."""
    h, _ = harness(store, tmp_path)
    incident = await fire(h)
    await h.tick(600)
    config = ServiceConfig.model_validate({"state_url": f"sqlite:///{tmp_path / 'x.db'}"})
    app = create_app(config, rules=h.rules, store=store, state=ServiceState(),
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        acked_at = h.clock.now() + timedelta(seconds=30)
        result = await app[ACKNOWLEDGER].acknowledge(
            incident, by=AckBy("Carol", "carol"), channel="link", at=acked_at)
        assert result.status == "acknowledged"
        await h.tick(30)
        body = await (await client.get(f"/api/v1/incidents/{incident}")).json()
        assert body["acknowledged_at"] == acked_at.isoformat().replace("+00:00", "Z")
        assert body["acknowledged_by"] == {"contact_id": "carol", "name": "Carol"}
        assert body["ack_channel"] == "link"
        assert {r["contact_id"]: (r["asked"], r["answered"], r["reminders"])
                for r in body["recipients"]} == {
            "alice": (True, False, 1), "bob": (True, False, 1), "carol": (True, True, 1)}
        kinds = [e["event"] for e in body["timeline"]]
        assert kinds.index("reminder_sent") < kinds.index("acknowledged")
        told = await (await client.get(
            f"/api/v1/deliveries?incident={incident}&phase=acknowledged")).json()
        assert sorted(d["recipient"] for d in told) == ["a***@e***.com", "b***@e***.com"]
    finally:
        await client.close()


async def test_reminder_waits_for_the_quiet_hours_that_held_the_notice(
        store: Store, tmp_path: Path) -> None:
    """Erin's escalation is held until 08:00 Paris: her reminder comes 10 minutes after
    that, not 10 minutes after the page was planned at night."""
    night = datetime.fromisoformat("2024-05-06T22:00:00+00:00")
    h, _ = harness(store, tmp_path, clock=FakeClock(night))
    await h.receive(make_alert("DiskFull", starts_at=night))
    await h.tick(30)
    for _ in range(4):
        await h.tick(600)  # tier 1 at +20m, tier 2 (erin, held) at +40m
    morning = datetime.fromisoformat("2024-05-07T06:00:00+00:00")
    h.clock.set(morning + timedelta(seconds=599))
    assert [(d.phase, d.contact_id) for d in await h.tick(0)] == []
    erin = [d for d in await h.tick(1) if d.contact_id == "erin"]
    assert [(d.phase, d.next_attempt_at) for d in erin] == [
        ("reminder", morning + timedelta(seconds=600))]


async def test_answer_during_group_wait(store: Store, tmp_path: Path) -> None:
    """Acknowledged before the first notice: it asks nothing, nobody is chased and no
    'acknowledged' notice follows it."""
    h, service = harness(store, tmp_path)
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    [summary] = await store.list_incidents()
    result = await service.acknowledge(summary.id, by=AckBy("Bob", "bob"), channel="cli",
                                       at=h.clock.now())
    assert result.status == "acknowledged"
    first = await h.tick(30)
    assert {d.phase for d in first} == {"firing"}
    assert all("ask= " in d.message.text for d in first)
    assert await h.tick(7200) == []


async def test_a_failing_reminder_is_a_dead_letter_the_others_go(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning Bob's reminder raises: a dead letter for him (once), reminders for the
    others, and the incident's timer is not stuck on the failed step."""
    from router.incidents import flush

    h, _ = harness(store, tmp_path)
    incident = await fire(h)
    real = flush.quiet_verdict

    def broken(rules: Any, policy: Any, severity: str, contact: Any, now: datetime) -> Any:
        if contact.id == "bob" and now >= FIRST + timedelta(seconds=600):
            raise ZeroDivisionError("boom")
        return real(rules, policy, severity, contact, now)

    monkeypatch.setattr(flush, "quiet_verdict", broken)
    planned = await h.tick(600)
    assert {(d.phase, d.contact_id, d.status) for d in planned} == {
        ("reminder", "alice", "pending"), ("reminder", "carol", "pending"),
        ("reminder", "bob", "failed")}
    failed = await events(store, incident, "notice_failed")
    assert [(e["phase"], e["contact_id"]) for e in failed] == [("reminder", "bob")]
    assert await store.next_incident_due() == FIRST + timedelta(seconds=1200)


async def test_pending_lists_every_open_request_of_a_phone(store: Store,
                                                          tmp_path: Path) -> None:
    """Two open incidents paging Bob: both pending for his phone, each with its code; an
    answer by link names him from the rules; then only the other one is pending."""
    h, service = harness(store, tmp_path)
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    await h.receive(make_alert("CpuHot", starts_at=T_MON_10))
    await h.tick(30)
    pending = await service.pending_for("sms", "+33612345602", h.clock.now())
    assert sorted((p.title, p.contact_name) for p in pending) == [
        ("CpuHot", "Bob"), ("DiskFull", "Bob")]
    assert all(p.code == ack_code(p.incident_id) for p in pending)
    assert await service.pending_for("sms", "+33699999999", h.clock.now()) == []
    disk = next(p.incident_id for p in pending if p.title == "DiskFull")
    result = await service.acknowledge(disk, by=AckBy("", "bob"), channel="link",
                                       at=h.clock.now())
    assert result.acknowledged_by == AckBy("Bob", "bob")
    left = await service.pending_for("sms", "+33612345601", h.clock.now())
    assert [p.title for p in left] == ["CpuHot"]  # alice: DiskFull is taken


async def test_store_acknowledge_is_guarded_by_the_version(store: Store,
                                                          tmp_path: Path) -> None:
    """Store contract: an answer computed from an older version writes nothing; the
    current one writes the answer, the event and moves the timer to the answer."""
    h, _ = harness(store, tmp_path)
    incident = await fire(h)
    snapshot = await store.load_incident(incident, h.clock.now(), lambda _l: [], None)
    assert snapshot is not None
    at = h.clock.now() + timedelta(seconds=5)
    decision = decide_ack(snapshot.incident, snapshot.logs, by=AckBy("Bob", "bob"),
                          channel="api", at=at)
    assert decision.change is not None
    stale = snapshot.incident.version - 1
    assert not await store.acknowledge_incident(incident, stale, decision.change, now=at)
    assert await events(store, incident, "acknowledged") == []
    assert await store.acknowledge_incident(incident, snapshot.incident.version,
                                            decision.change, now=at)
    assert await store.next_incident_due() == at
    assert await store.pending_acks(["alice", "bob", "carol"]) == []
    again = await store.load_incident(incident, at, lambda _l: [], None)
    assert again is not None and again.incident.version == snapshot.incident.version + 1
    assert again.incident.ack is not None and again.incident.ack.by_id == "bob"
    assert again.logs[("oncall", "bob")].answered_at == at
    assert again.logs[("oncall", "alice")].answered_at is None


def test_the_decision_snapshot_keeps_the_ack_policy() -> None:
    """An incident's route decision (JSON in its row) gives back the same AckPolicy."""
    from router.incidents.state import decision_from_json, decision_to_json
    from router.models import IncidentPolicy

    decision = RouteDecision(
        route_id="{}", route_name=None, severity="critical", audiences=("oncall",),
        channels=("sms",), template="default", group_by=("alertname",), group_by_all=False,
        policy=IncidentPolicy(ack=POLICY))
    assert decision_from_json(decision_to_json(decision)) == decision
    plain = replace(decision, policy=IncidentPolicy())
    assert decision_from_json(decision_to_json(plain)) == plain


async def test_critical_breaks_quiet_hours_for_escalation(store: Store,
                                                         tmp_path: Path) -> None:
    """The same quiet-hours verdict as first notices: a critical escalation to Erin at
    night goes at once."""
    night = datetime.fromisoformat("2024-05-06T22:00:00+00:00")
    h, _ = harness(store, tmp_path, clock=FakeClock(night))
    await h.receive(make_alert("DiskFull", starts_at=night, severity="critical"))
    await h.tick(30)
    await h.tick(1200)
    tier2 = await h.tick(1200)
    erin = [d for d in tier2 if d.contact_id == "erin"]
    assert [(d.phase, d.next_attempt_at) for d in erin] == [("escalation", h.clock.now())]


async def test_without_notify_on_ack_the_others_are_not_told(store: Store,
                                                            tmp_path: Path) -> None:
    """notify_on_ack: false — the answer stops the chase and nothing is sent; the
    scheduler is woken by the answer."""
    h, service = harness(store, tmp_path, replace(POLICY, notify_on_ack=False))
    woken: list[bool] = []
    service.wake = lambda: woken.append(True)
    incident = await fire(h)
    await service.acknowledge(incident, by=AckBy("Bob", "bob"), channel="sms",
                              at=h.clock.now())
    assert woken == [True]
    assert await h.tick(0) == []
    assert await h.tick(7200) == []


async def test_nobody_reachable_escalates_from_the_opening(store: Store,
                                                          tmp_path: Path) -> None:
    """The route's audience has nobody reachable by e-mail (no first notice at all): the
    first tier is still paged, 20 minutes after the incident opened."""
    text = RULES.replace(
        "  audiences: [oncall]\n  template", "  audiences: [ghosts]\n  template").replace(
        "audiences:\n  oncall:", "audiences:\n  ghosts:\n    contacts:\n"
        "      - {id: ghost, name: Ghost, phone: '+33612345609'}\n  oncall:")
    rules: Any = AckRules(load(tmp_path, text), POLICY)
    h = Harness(store, rules, FakeClock(T_MON_10))
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    assert await h.tick(30) == []
    assert await h.tick(1169) == []
    paged = await h.tick(1)
    assert h.clock.now() == T_MON_10 + timedelta(seconds=1200)
    assert who(paged) == {("escalation", "dave", "sms"), ("escalation", "dave", "email"),
                          ("escalation", "bob2", "email")}  # bob was not paged this time
