"""The store contract seen from the incident pipeline: ids, versions, claims."""

from __future__ import annotations

from datetime import timedelta

from tests.incidents.harness import T_MON_10, Harness, make_alert

START = T_MON_10 - timedelta(minutes=2)


async def _open_and_resolve(h: Harness) -> None:
    """One incident of group HostDown, notified then resolved."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    await h.tick(30)
    await h.receive(make_alert("HostDown", instance="a", starts_at=START, status="resolved",
                               ends_at=h.clock.now()))
    await h.tick(300)


async def test_an_incident_opened_after_retention_pruned_its_group_gets_a_new_id(
        h: Harness) -> None:
    """Ids do not come from counting a group's incidents: pruning one never reuses an id.

    Reproducer: with ``COUNT(*)`` ids, the third incident of a group whose first was
    pruned got the id of the second, and the intake batch failed on the primary key.
    """
    await _open_and_resolve(h)
    h.clock.advance(3600)
    await _open_and_resolve(h)
    first, second = sorted(await h.store.list_incidents(), key=lambda i: i.opened_at)
    assert first.resolved_at is not None
    cutoff = first.resolved_at + timedelta(seconds=1)
    step = await h.store.prune_step("incidents", cutoff, 0, 100)
    assert step.deleted == 1
    h.clock.advance(3600)
    await h.receive(make_alert("HostDown", instance="a", starts_at=h.clock.now()))
    incidents = await h.store.list_incidents()
    assert [i.state for i in incidents] == ["open", "resolved"]
    assert incidents[1].id == second.id
    assert incidents[0].id not in {first.id, second.id}
    assert await h.store.list_intake(status="dead") == []
