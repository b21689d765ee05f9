"""A flush renders a bounded view of a large incident, with the same notices as before."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from router.clock import FakeClock
from router.incidents.flush import AudienceView, FlushRules
from router.models import Alert, Contact, Phase, RenderedMessage, RouteDecision
from router.rules import RuleSet
from router.rules.incident_rules import IncidentRules
from router.rules.view import (
    MAX_LISTED_ALERTS,
    NOT_REQUESTED,
    AckView,
    AlertList,
    IncidentView,
    StormItem,
    alert_view,
)
from router.store import SqliteStore
from router.workers.scheduler import Scheduler
from tests.incidents.harness import RULES, T_MON_10, Harness, load, make_alert

START = T_MON_10 - timedelta(minutes=2)

# The default template, listing the alerts the way the shipped templates do.
_LISTING = (
    "{% for a in incident.alerts %}{{ a.labels.instance }}"
    "{% if a in incident.new %}*{% endif %},{% endfor %}"
    " more={{ incident.total - incident.alerts | length }}"
    " new={{ incident.new | length }} firing={{ incident.firing | length }}"
)
LISTING_RULES = RULES.replace(
    """text: "{{ incident.instances | join(',') }} {{ incident.duration_s | duration }}\"""",
    f"text: '{_LISTING}'",
)


@dataclass
class RecordingRules:
    """The rule set, recording the incident view handed to every render (the seam)."""

    rules: RuleSet
    views: list[IncidentView] = field(default_factory=list)

    @property
    def audiences(self) -> Mapping[str, AudienceView]:
        return self.rules.audiences

    @property
    def incident(self) -> IncidentRules:
        return self.rules.incident

    def render(
        self, decision: RouteDecision, alert: Alert, contact: Contact, channel: str,
        phase: Phase, meta: Mapping[str, str], *, incident: IncidentView | None = None,
        storm: tuple[StormItem, ...] = (), ack: AckView = NOT_REQUESTED,
    ) -> RenderedMessage:
        if incident is not None:
            self.views.append(incident)
        return self.rules.render(decision, alert, contact, channel, phase, meta,
                                 incident=incident, storm=storm, ack=ack)


def _harness(tmp_path: Path, store: SqliteStore) -> tuple[Harness, RecordingRules]:
    h = Harness(store, load(tmp_path, LISTING_RULES), FakeClock(T_MON_10))
    recording = RecordingRules(h.rules)
    rules: FlushRules = recording
    h.scheduler = Scheduler(store, lambda: rules, clock=h.clock, deadline_s=3600)
    return h, recording


def _hosts(first: int, count: int) -> list[Alert]:
    return [make_alert("HostDown", instance=f"h{i:04d}", starts_at=START)
            for i in range(first, first + count)]


def _in_order(alerts: list[Alert]) -> list[str]:
    """Instances in the order incidents list alerts (start, then fingerprint)."""
    return [a.labels["instance"]
            for a in sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint))]


async def test_large_incident_renders_a_bounded_list(tmp_path: Path,
                                                     store: SqliteStore) -> None:
    """300 alerts: every render gets at most MAX_LISTED_ALERTS alerts, counts stay complete."""
    h, recording = _harness(tmp_path, store)
    alerts = _hosts(0, 300)
    await h.receive(*alerts)
    planned = await h.tick(30)
    assert sorted(d.recipient for d in planned) == ["alice@example.com", "bob@example.com"]
    assert recording.views
    for view in recording.views:
        assert len(view.alerts) == MAX_LISTED_ALERTS
        assert (view.total, view.count, len(view.firing), len(view.new)) == (300, 300, 300, 300)
        assert len(view.instances) == 300
    text = planned[0].message.text
    listed = ",".join(f"{i}*" for i in _in_order(alerts)[:MAX_LISTED_ALERTS])
    assert text.startswith(listed + ",")
    assert f"more={300 - MAX_LISTED_ALERTS}" in text
    assert "new=300 firing=300" in text


async def test_growing_large_incident_keeps_phases_keys_and_new_alerts(
        tmp_path: Path, store: SqliteStore) -> None:
    """Updates of a large incident: same phases, sequence and dedup; `new` lists every joiner."""
    h, recording = _harness(tmp_path, store)
    await h.receive(*_hosts(0, 120))
    first = await h.tick(30)
    assert {d.phase for d in first} == {"firing"}
    recording.views.clear()
    await h.receive(*_hosts(120, 80))
    update = await h.tick(300)
    assert {d.phase for d in update} == {"update"}
    assert sorted(d.recipient for d in update) == ["alice@example.com", "bob@example.com"]
    # Idempotency keys follow the recipient's sequence: one more notice each.
    assert not {d.idempotency_key for d in update} & {d.idempotency_key for d in first}
    for view in recording.views:
        assert len(view.alerts) == MAX_LISTED_ALERTS
        assert [a.labels["instance"] for a in view.new] == _in_order(_hosts(120, 80))
    text = update[0].message.text
    listed = _in_order(_hosts(0, 200))[:MAX_LISTED_ALERTS]
    new_listed = {i for i in listed if int(i[1:]) >= 120}
    assert text.split(" more=")[0] == ",".join(
        f"{i}*" if i in new_listed else i for i in listed) + ","
    assert "new=80 firing=200" in text
    # The same state again (a retry, an HA replica): no notice.
    await h.receive(*_hosts(0, 200), sender="http://am-2:9093")
    assert await h.tick(300) == []


async def test_small_incident_lists_every_alert(tmp_path: Path, store: SqliteStore) -> None:
    """Up to MAX_LISTED_ALERTS alerts, the listing is complete and nothing is said hidden."""
    h, _ = _harness(tmp_path, store)
    alerts = _hosts(0, 3)
    await h.receive(*alerts)
    [notice, _other] = await h.tick(30)
    assert notice.message.text.startswith(",".join(f"{i}*" for i in _in_order(alerts)) + ",")
    assert "more=0" in notice.message.text


def test_alert_list_membership_is_by_fingerprint() -> None:
    """`a in incident.new` compares fingerprints (no field-by-field comparison of views)."""
    a, b = (alert_view(x) for x in _hosts(0, 2))
    listed = AlertList([a])
    assert a in listed
    assert b not in listed
    assert "not an alert" not in listed
    assert listed == [a]


async def test_inhibit_sources_are_found_by_fingerprint(tmp_path: Path) -> None:
    """Migration 0005: replacing a fingerprint's inhibition sources uses an index, no scan."""
    path = tmp_path / "state.db"
    opened = SqliteStore(str(path))
    await opened.start()
    await opened.close()
    with closing(sqlite3.connect(path)) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(
            "EXPLAIN QUERY PLAN DELETE FROM inhibit_sources WHERE fingerprint IN"
            " (SELECT value FROM json_each(?))", ("[]",)))
    assert "inhibit_sources_fingerprint" in plan
