"""An open incident keeps its route across a rule reload that edits the tree around it.

Reproducer (all but the last test): an incident's group key hashed the route's position
(``root/1``), so after a route was inserted above, the next re-send of the same alert
opened a second incident and paged everyone again, while the first stayed open forever.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from router.incidents.grouping import group_key
from router.store import PostgresStore
from tests.incidents.harness import RULES, T_MON_10, Harness, load, make_alert


@pytest.fixture(autouse=True)
def _sending(h: Harness) -> None:
    """First notices are sent before the incident resolves: it ends with `resolved`."""
    h.send = True

START = T_MON_10 - timedelta(minutes=2)
BILLING = """
    - name: billing
      matchers: ['service="billing"']
"""
INSERTED = """
    - name: payments
      matchers: ['team="payments"']
"""
ANCHOR = "  routes:\n"


def _rules(*routes: str) -> str:
    """The harness rules with ``routes`` put first among the root's children."""
    assert ANCHOR in RULES
    return RULES.replace(ANCHOR, ANCHOR + "".join(r.lstrip("\n") for r in routes), 1)


async def _page_once(h: Harness) -> None:
    """A billing alert: one incident, its first notice to both ops contacts."""
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START))
    assert {d.phase for d in await h.tick(30)} == {"firing"}


async def test_route_inserted_above_keeps_the_incident(h: Harness, tmp_path: Path) -> None:
    """After inserting a route above, the re-sent alert joins the same incident: no new page."""
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    h.rules = load(tmp_path, _rules(INSERTED, BILLING))
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START))
    assert await h.tick(4 * 3600 - 120) == []  # no second first notice, before the reminder
    [incident] = await h.store.list_incidents()
    assert incident.route_id == "billing"
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    resolved = await h.tick(300)
    assert {d.phase for d in resolved} == {"resolved"}
    assert len(resolved) == 2
    assert [i.state for i in await h.store.list_incidents()] == ["resolved"]


async def test_unnamed_route_keeps_its_incident_too(h: Harness, tmp_path: Path) -> None:
    """An unnamed route is known by its matchers path, so a route inserted above changes
    nothing either."""
    await h.receive(make_alert("Checkout", audience="customers", starts_at=START))
    assert len(await h.tick(30)) == 2
    h.rules = load(tmp_path, _rules(INSERTED))
    await h.receive(make_alert("Checkout", audience="customers", starts_at=START))
    assert await h.tick(60) == []
    [incident] = await h.store.list_incidents()
    assert incident.route_id == '{}/{audience="customers"}'


async def test_renamed_route_still_resolves_its_open_incident(h: Harness,
                                                             tmp_path: Path) -> None:
    """When a reload renames the route of an open incident, the incident stays open and the
    alert's resolution still resolves it, with its resolved notice."""
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    h.rules = load(tmp_path, _rules(BILLING.replace("name: billing", "name: invoicing")))
    assert [i.state for i in await h.store.list_incidents()] == ["open"]
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    resolved = await h.tick(300)
    assert {d.phase for d in resolved} == {"resolved"}
    assert len(resolved) == 2
    [incident] = await h.store.list_incidents()
    assert (incident.state, incident.route_id) == ("resolved", "billing")


async def test_removed_route_still_resolves_its_open_incident(h: Harness,
                                                             tmp_path: Path) -> None:
    """When a reload removes the route of an open incident, the alert's resolution (now
    routed by the root) resolves the incident of the removed route."""
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    h.rules = load(tmp_path, RULES)
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    assert {d.phase for d in await h.tick(300)} == {"resolved"}
    assert [i.state for i in await h.store.list_incidents()] == ["resolved"]


def _make_legacy(h: Harness, db: Path, position: str) -> None:
    """Rewrite the open incident as Tocsin before route identities stored it: route id =
    position, group key hashed from the position (in either store's database)."""
    if isinstance(h.store, PostgresStore):
        with psycopg.connect(h.store._url, autocommit=True) as pg:  # the database under test
            [(iid, labels, decision)] = pg.execute(
                "SELECT id, group_labels, decision FROM incidents WHERE state = 'open'"
            ).fetchall()
            snapshot = json.loads(decision)
            snapshot["route_id"] = position
            pg.execute("UPDATE incidents SET route_id = %s, group_key = %s, decision = %s"
                       " WHERE id = %s", (position, group_key(position, json.loads(labels)),
                                          json.dumps(snapshot), iid))
        return
    conn = sqlite3.connect(db)
    try:
        [(iid, labels, decision)] = conn.execute(
            "SELECT id, group_labels, decision FROM incidents WHERE state = 'open'").fetchall()
        snapshot = json.loads(decision)
        snapshot["route_id"] = position
        conn.execute("UPDATE incidents SET route_id = ?, group_key = ?, decision = ?"
                     " WHERE id = ?", (position, group_key(position, json.loads(labels)),
                                      json.dumps(snapshot), iid))
        conn.commit()
    finally:
        conn.close()


async def test_upgrade_gives_legacy_incidents_their_route_identity(
        h: Harness, tmp_path: Path) -> None:
    """An incident opened under a route position gets its route's identity at start-up: the
    re-sent alert joins it (no second page) and it resolves with its notice.

    Reproducer: without the upgrade step, the first re-send after the upgrade opened a
    second incident and paged again.
    """
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    _make_legacy(h, tmp_path / "tocsin.db", "root/0")
    assert await h.processor.upgrade_legacy_incidents() == 1
    assert await h.processor.upgrade_legacy_incidents() == 0  # done once
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START))
    assert await h.tick(3600) == []
    [incident] = await h.store.list_incidents()
    assert incident.route_id == "billing"
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    assert {d.phase for d in await h.tick(300)} == {"resolved"}


async def test_upgrade_leaves_an_incident_whose_position_now_holds_another_route(
        h: Harness, tmp_path: Path) -> None:
    """When the route at the incident's old position is another one, the incident keeps its
    old key, stays open, and the alert's resolution still resolves it."""
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    _make_legacy(h, tmp_path / "tocsin.db", "root/0")
    h.rules = load(tmp_path, _rules(INSERTED, BILLING))  # root/0 is now 'payments'
    assert await h.processor.upgrade_legacy_incidents() == 0
    [incident] = await h.store.list_incidents()
    assert (incident.state, incident.route_id) == ("open", "root/0")
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    assert {d.phase for d in await h.tick(300)} == {"resolved"}
    assert [i.state for i in await h.store.list_incidents()] == ["resolved"]


async def test_resolution_resolves_the_renamed_routes_incident_after_a_new_one_opened(
        h: Harness, tmp_path: Path) -> None:
    """Renamed route, then a re-send opened a new incident under the new identity: the
    alert's resolution resolves both, the old one included (it does not stay open)."""
    h.rules = load(tmp_path, _rules(BILLING))
    await _page_once(h)
    h.rules = load(tmp_path, _rules(BILLING.replace("name: billing", "name: invoicing")))
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START))
    assert {d.phase for d in await h.tick(30)} == {"firing"}  # the new identity's incident
    assert sorted(i.route_id for i in await h.store.list_incidents(state="open")) == [
        "billing", "invoicing"]
    await h.receive(make_alert("PaymentsFailing", service="billing", starts_at=START,
                               status="resolved", ends_at=h.clock.now()))
    resolved = await h.tick(300)
    assert [d.phase for d in resolved] == ["resolved"] * 4  # 2 contacts x 2 incidents
    assert await h.store.list_incidents(state="open") == []
