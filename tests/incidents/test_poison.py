"""One poisoned item (alert, incident, recipient, template) never stops the others.

Reproducers of the hardening issue: an ``eta: 999999999d`` annotation (or ``startsAt``
9999-12-31T23:00:00Z with ``eta: 2h``) made every flush pass abort on the oldest due
incident, so no later incident was ever notified; a render failure was not a counted dead
letter; an intake row whose routing raised was marked processed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import router.flush_offload as flush_offload_module
import router.incidents.flush as flush_module
from router.http.api import delivery_to_json
from router.metrics import REGISTRY
from router.models import IntakeRecord, RouteDecision
from router.rules import RuleSet
from router.rules.view import parse_eta
from router.store import SqliteStore
from tests.incidents.harness import RULES, T_MON_10, Harness, load, make_alert

END_OF_TIME = datetime.fromisoformat("9999-12-31T23:00:00+00:00")


def metric(name: str, **labels: str) -> float:
    """Current value of one sample of the Tocsin registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def events_of(h: Harness, alertname: str) -> list[tuple[str, dict[str, Any]]]:
    """The timeline (kind, detail) of the incident grouping ``alertname``."""
    (summary,) = [i for i in await h.store.list_incidents()
                  if i.group_labels.get("alertname") == alertname]
    detail = await h.store.get_incident(summary.id)
    assert detail is not None
    return [(e.kind, dict(e.detail)) for e in detail.events]


def test_eta_out_of_range_is_ignored_with_a_note() -> None:
    """Reproducer: ``999999999d`` and a start at the calendar's end give no eta and a
    note instead of OverflowError."""
    from router.rules.view import read_eta

    for text, start in (("999999999d", T_MON_10), ("2h", END_OF_TIME),
                        ("9999-12-31T23:59:59Z", T_MON_10), ("tomorrow", T_MON_10)):
        eta, note = read_eta(text, start)
        assert eta is None and note is not None and "ignored" in note, text
        assert parse_eta(text, start) is None
    assert read_eta("45m", T_MON_10) == (T_MON_10 + timedelta(minutes=45), None)
    assert read_eta("", T_MON_10) == (None, None)


async def test_poison_eta_incident_does_not_stop_later_ones(h: Harness) -> None:
    """Reproducer of the issue's webhook: the poisoned incident and a later healthy one
    are both notified, the ignored eta noted on the poisoned incident's timeline."""
    await h.receive(make_alert("P", starts_at=T_MON_10, annotations={"eta": "999999999d"}))
    h.clock.advance(1)
    await h.receive(make_alert("H", starts_at=T_MON_10))
    sent = await h.tick(31)
    assert {d.message.subject.split()[1] for d in sent} == {"P", "H"}
    kinds = dict(await events_of(h, "P"))
    assert "more than 366 days" in kinds["value_ignored"]["notes"][0]


async def test_an_ignored_value_is_noted_once_not_at_every_flush(h: Harness) -> None:
    """Reproducer: every flush of the poisoned incident (first notice, group_interval
    update, repeat) added a ``value_ignored`` event; now one, and one more only when the
    notes change (a later alert brings another ignored eta)."""
    await h.receive(make_alert("P", starts_at=T_MON_10, annotations={"eta": "999999999d"}))
    assert len(await h.tick(31)) == 2  # first notice: alice and bob
    await h.receive(make_alert("P", starts_at=T_MON_10, instance="b"))
    assert len(await h.tick(300)) == 2  # group_interval: the new alert
    assert len(await h.tick(4 * 3600 + 1)) == 2  # repeat_interval
    kinds = [kind for kind, _ in await events_of(h, "P")]
    assert kinds.count("value_ignored") == 1

    await h.receive(make_alert("P", starts_at=T_MON_10 + timedelta(hours=5), instance="c",
                               annotations={"eta": "tomorrow"}))
    assert len(await h.tick(300)) == 2
    noted = [detail["notes"] for kind, detail in await events_of(h, "P")
             if kind == "value_ignored"]
    assert len(noted) == 2 and len(noted[1]) == 2, await events_of(h, "P")  # the new note too


async def test_start_at_the_end_of_time_does_not_stop_later_ones(h: Harness) -> None:
    """Reproducer: ``startsAt`` 9999-12-31T23:00:00Z with ``eta: 2h`` is flushed, and a
    later incident is notified in the same pass."""
    await h.receive(make_alert("P", starts_at=END_OF_TIME, annotations={"eta": "2h"}))
    h.clock.advance(1)
    await h.receive(make_alert("H", starts_at=T_MON_10))
    sent = await h.tick(31)
    assert {d.message.subject.split()[1] for d in sent} == {"P", "H"}


async def test_a_raising_flush_is_quarantined_with_backoff(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that raises quarantines only its incident (timeline reason, metric, timer
    backed off 60 s then 120 s); a later healthy incident is notified in the same pass;
    the poisoned one is retried only after its back-off and heals once fixed."""
    real = flush_offload_module.plan_flush
    broken = {"on": True}

    def plan_flush(incident: Any, *args: Any, **kwargs: Any) -> Any:
        if broken["on"] and incident.group_labels.get("alertname") == "P":
            raise OverflowError("date value out of range")
        return real(incident, *args, **kwargs)

    monkeypatch.setattr(flush_offload_module, "plan_flush", plan_flush)
    before = metric("tocsin_pipeline_item_failures_total", stage="flush",
                    reason="OverflowError")
    await h.receive(make_alert("P", starts_at=T_MON_10))
    h.clock.advance(1)
    await h.receive(make_alert("H", starts_at=T_MON_10))
    sent = await h.tick(31)  # one pass: P fails first (oldest due), H goes on
    assert {d.message.subject.split()[1] for d in sent} == {"H"}
    assert metric("tocsin_pipeline_item_failures_total", stage="flush",
                  reason="OverflowError") == before + 1
    (p,) = [i for i in await h.store.list_incidents() if i.group_labels["alertname"] == "P"]
    assert p.flush_failures == 1 and p.flush_error is not None
    assert "OverflowError" in p.flush_error
    assert p.due_at == h.clock.now() + timedelta(seconds=60)
    failed = [d for k, d in await events_of(h, "P") if k == "flush_failed"]
    assert failed[0]["reason"] == "OverflowError" and failed[0]["failures"] == 1

    assert await h.tick(59) == []  # not retried before its back-off: no hot loop
    assert metric("tocsin_pipeline_item_failures_total", stage="flush",
                  reason="OverflowError") == before + 1
    await h.tick(1)  # retried once at 60 s, fails again: next in 120 s
    (p,) = [i for i in await h.store.list_incidents() if i.group_labels["alertname"] == "P"]
    assert p.flush_failures == 2
    assert p.due_at == h.clock.now() + timedelta(seconds=120)

    broken["on"] = False
    sent = await h.tick(120)
    assert {d.message.subject.split()[1] for d in sent} == {"P"}
    (p,) = [i for i in await h.store.list_incidents() if i.group_labels["alertname"] == "P"]
    assert p.flush_failures == 0 and p.flush_error is None


async def test_backoff_is_capped(tmp_path: Path, store: SqliteStore,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The quarantine doubles from the base up to the cap, never beyond."""
    def plan_flush(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(flush_offload_module, "plan_flush", plan_flush)
    from router.clock import FakeClock
    from router.workers.scheduler import Scheduler

    h = Harness(store, load(tmp_path), FakeClock(T_MON_10))
    h.scheduler = Scheduler(store, lambda: h.rules, clock=h.clock, deadline_s=3600,
                            quarantine_base_s=60, quarantine_cap_s=300)
    await h.receive(make_alert("P", starts_at=T_MON_10))
    delays = []
    h.clock.advance(30)
    for _ in range(5):
        await h.scheduler.flush_due()
        (p,) = await store.list_incidents()
        assert p.due_at is not None
        delays.append((p.due_at - h.clock.now()).total_seconds())
        h.clock.set(p.due_at)
    assert delays == [60, 120, 240, 300, 300]


class ExplodingRules:
    """A rule set whose routing raises for alerts named Boom."""

    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rules, name)

    def evaluate(self, labels: Mapping[str, str]) -> list[RouteDecision]:
        if labels.get("alertname") == "Boom":
            raise ZeroDivisionError("bug")
        return self._rules.evaluate(labels)


async def test_routing_failure_dead_letters_the_intake_row(h: Harness) -> None:
    """Reproducer: a row whose routing raised is dead-lettered (not processed), listed
    with its reason, counted; the other rows are routed; a replay routes it again."""
    good = h.rules
    h.rules = ExplodingRules(good)  # type: ignore[assignment]
    before = metric("tocsin_pipeline_item_failures_total", stage="intake",
                    reason="ZeroDivisionError")
    await h.store.append_intake([
        IntakeRecord(source="alertmanager", received_at=T_MON_10, meta={},
                     alert=make_alert(name, starts_at=T_MON_10)) for name in ("Boom", "H")])
    assert await h.processor.process_once() == 2
    assert await h.processor.process_once() == 0  # never fetched again
    (dead,) = await h.store.list_intake(status="dead")
    assert dead["dead_letter_reason"] == "ZeroDivisionError: bug"
    assert dead["fingerprint"] == make_alert("Boom", starts_at=T_MON_10).fingerprint
    assert metric("tocsin_pipeline_item_failures_total", stage="intake",
                  reason="ZeroDivisionError") == before + 1
    assert (await h.store.counts())["intake_pending"] == 0
    assert [i.group_labels["alertname"] for i in await h.store.list_incidents()] == ["H"]

    h.rules = good
    assert await h.store.requeue_intake(None) == [dead["id"]]
    assert await h.processor.process_once() == 1
    assert await h.store.list_intake(status="dead") == []
    assert sorted(i.group_labels["alertname"] for i in await h.store.list_incidents()) == [
        "Boom", "H"]


STRICT = RULES.replace(
    'text: "{{ incident.instances | join(\',\') }} {{ incident.duration_s | duration }}"',
    'text: "{{ alert.labels.x }} {{ alert.starts_at.oops if alert.labels.bad else \'\' }}'
    ' {{ alert.annotations.maintenance_start | date }}"')


async def test_render_failure_is_a_counted_dead_letter(tmp_path: Path, store: SqliteStore) -> None:
    """Reproducer of point 6: a render failure is a dead letter with reason ``render``,
    counted in tocsin_dead_letters_total (so TocsinDeadLetters fires) and in the API."""
    from router.clock import FakeClock

    h = Harness(store, load(tmp_path, STRICT), FakeClock(T_MON_10))
    before = metric("tocsin_dead_letters_total", channel="email", reason="render")
    failures = metric("tocsin_pipeline_item_failures_total", stage="render",
                      reason="RenderError")
    await h.receive(make_alert("Bad", starts_at=T_MON_10, bad="1"))
    sent = await h.tick(30)
    assert len(sent) == 2 and {d.status for d in sent} == {"failed"}
    assert metric("tocsin_dead_letters_total", channel="email", reason="render") == before + 2
    assert metric("tocsin_pipeline_item_failures_total", stage="render",
                  reason="RenderError") == failures + 2
    shown = delivery_to_json(sent[0])
    assert shown["dead_letter"] is True and shown["dead_letter_reason"] == "render"
    # Nothing to replay: the message was never made.
    assert await store.requeue_failed(None, now=h.clock.now(), deadline_s=60) == []


async def test_unreadable_maintenance_start_renders_as_written(
    tmp_path: Path, store: SqliteStore
) -> None:
    """Reproducer of point 6: ``maintenance_start: "tomorrow 10:00"`` no longer fails the
    render; the text is shown as written."""
    from router.clock import FakeClock

    h = Harness(store, load(tmp_path, STRICT), FakeClock(T_MON_10))
    await h.receive(make_alert("Maint", starts_at=T_MON_10,
                               annotations={"maintenance_start": "tomorrow 10:00"}))
    sent = await h.tick(30)
    assert len(sent) == 2 and {d.status for d in sent} == {"pending"}
    assert all("tomorrow 10:00" in d.message.text for d in sent)


async def test_a_recipient_whose_planning_raises_is_a_dead_letter(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recipient whose planning raises gets a dead letter (reason ``plan``) and a
    timeline event; the other recipient of the incident is notified."""
    real = flush_module.quiet_verdict

    def quiet_verdict(rules: Any, policy: Any, severity: str, contact: Any, now: datetime
                      ) -> Any:
        if contact.id == "bob":
            raise ValueError("bad zone")
        return real(rules, policy, severity, contact, now)

    monkeypatch.setattr(flush_module, "quiet_verdict", quiet_verdict)
    before = metric("tocsin_dead_letters_total", channel="email", reason="plan")
    await h.receive(make_alert("HostDown", starts_at=T_MON_10))
    sent = await h.tick(30)
    by_contact = {d.contact_id: d for d in sent}
    assert by_contact["alice"].status == "pending"
    assert by_contact["bob"].status == "failed"
    assert by_contact["bob"].dead_letter_reason == "plan"
    assert "ValueError: bad zone" in (by_contact["bob"].last_error or "")
    assert metric("tocsin_dead_letters_total", channel="email", reason="plan") == before + 1
    failed = [d for k, d in await events_of(h, "HostDown") if k == "notice_failed"]
    assert failed[0]["contact_id"] == "bob" and failed[0]["reason"] == "ValueError"


async def test_a_row_the_store_cannot_apply_is_dead_lettered_alone(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose commit raises because of one row is committed again row by row: that
    row is dead-lettered, the others are applied (the intake is not wedged)."""
    from router.incidents.batch import IntakeBatch

    real = IntakeBatch.apply

    def apply(batch: IntakeBatch, event: Any) -> Any:  # inside every store's commit job
        if event.alert.labels.get("alertname") == "Poison":
            raise ValueError("cannot store this alert")
        return real(batch, event)

    monkeypatch.setattr(IntakeBatch, "apply", apply)
    await h.store.append_intake([
        IntakeRecord(source="alertmanager", received_at=T_MON_10, meta={},
                     alert=make_alert(name, starts_at=T_MON_10)) for name in ("Poison", "H")])
    assert await h.processor.process_once() == 2
    assert await h.processor.process_once() == 0
    (dead,) = await h.store.list_intake(status="dead")
    assert dead["dead_letter_reason"] == "ValueError: cannot store this alert"
    assert [i.group_labels["alertname"] for i in await h.store.list_incidents()] == ["H"]
