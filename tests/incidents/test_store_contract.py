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


async def test_two_schedulers_never_claim_the_same_due_incident(h: Harness) -> None:
    """A due incident claimed by one scheduler is not handed to another until its lease ends."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    h.clock.advance(30)
    now = h.clock.now()
    claimed = await h.store.claim_due_incidents(now, 10, owner="s1", lease_s=60)
    assert len(claimed) == 1
    assert await h.store.claim_due_incidents(now, 10, owner="s2", lease_s=60) == []
    assert await h.store.claim_due_incidents(now, 10, owner="s1", lease_s=60) == claimed
    later = now + timedelta(seconds=60)
    assert await h.store.claim_due_incidents(later, 10, owner="s2", lease_s=60) == claimed


async def test_a_committed_flush_releases_the_claim_on_its_incident(h: Harness) -> None:
    """Once flushed, the incident's next timer is free for any scheduler."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    h.clock.advance(30)
    [incident_id] = await h.store.claim_due_incidents(h.clock.now(), 10, owner="s1",
                                                      lease_s=3600)
    assert await h.scheduler.flush_one(incident_id, h.clock.now()) == 2
    await h.receive(make_alert("HostDown", instance="b", starts_at=START))
    h.clock.advance(300)
    assert await h.store.claim_due_incidents(h.clock.now(), 10, owner="s2",
                                             lease_s=60) == [incident_id]
