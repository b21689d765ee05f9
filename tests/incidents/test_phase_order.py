"""For one recipient, the phases of one incident go out in order: a notice is not claimed
while an earlier one of the same incident to the same contact on the same channel is
still pending (queued, being sent, or waiting for a retry)."""

from __future__ import annotations

from router.models import Receipt
from tests.incidents.harness import T_MON_10, Harness, make_alert


async def test_a_resolved_notice_waits_for_the_first_one(h: Harness) -> None:
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    first = await h.tick(30)
    assert sorted((d.contact_id, d.phase) for d in first) == [
        ("alice", "firing"), ("bob", "firing")]
    # Alice's first notice is being sent (claimed), Bob's still queued.
    [alice_first] = [d for d in first if d.contact_id == "alice"]
    claimed = await h.store.claim_due(h.clock.now(), 1, 600)
    assert [d.id for d in claimed] == [alice_first.id]
    await h.receive(make_alert("DiskFull", status="resolved", starts_at=T_MON_10,
                               ends_at=h.clock.now()))
    resolved = await h.tick(300)
    assert sorted((d.contact_id, d.phase) for d in resolved) == [
        ("alice", "resolved"), ("bob", "resolved")]
    # Only Bob's first notice may go now: both resolved notices wait behind a first one.
    now = h.clock.now()
    assert [(d.contact_id, d.phase) for d in await h.store.claim_due(now, 10, 600)] == [
        ("bob", "firing")]
    assert await h.store.claim_due(now, 10, 600) == []
    await h.store.mark_sent(alice_first.id, now, Receipt(provider_id="m1"))
    assert [(d.contact_id, d.phase) for d in await h.store.claim_due(now, 10, 600)] == [
        ("alice", "resolved")]
