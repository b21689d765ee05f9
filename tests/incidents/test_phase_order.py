"""For one recipient, the phases of one incident go out in order: a notice is not claimed
while an earlier one of the same incident to the same contact on the same channel is
still pending (queued, being sent, or waiting for a retry). A first notice still queued
(not sent, not being sent) when the incident resolves is replaced by one ``summary``."""

from __future__ import annotations

from typing import Any

from router.models import Receipt
from tests.incidents.harness import T_MON_10, Harness, make_alert


async def _fire_then_resolve(h: Harness, *, lease: bool) -> list[tuple[str, str]]:
    """Alice's and Bob's first notices are planned; with ``lease`` Alice's is claimed
    (being sent); then the incident resolves. Returns what the resolution planned."""
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    first = await h.tick(30)
    assert sorted((d.contact_id, d.phase) for d in first) == [
        ("alice", "firing"), ("bob", "firing")]
    if lease:
        [alice_first] = [d for d in first if d.contact_id == "alice"]
        claimed = await h.store.claim_due(h.clock.now(), 1, 600)
        assert [d.id for d in claimed] == [alice_first.id]
    await h.receive(make_alert("DiskFull", status="resolved", starts_at=T_MON_10,
                               ends_at=h.clock.now()))
    return sorted((d.contact_id, d.phase) for d in await h.tick(300))


async def test_resolved_while_queued_is_one_summary(h: Harness) -> None:
    """Neither first notice went out: both are cancelled, each gets one summary."""
    assert await _fire_then_resolve(h, lease=False) == [("alice", "summary"), ("bob", "summary")]
    rows = [(d.contact_id, d.phase, d.status) for d in await h.deliveries()]
    assert sorted(rows) == [("alice", "firing", "cancelled"), ("alice", "summary", "pending"),
                            ("bob", "firing", "cancelled"), ("bob", "summary", "pending")]
    [summary] = [d for d in await h.deliveries() if (d.contact_id, d.phase)
                 == ("bob", "summary")]
    now = h.clock.now()
    assert sorted((d.contact_id, d.phase) for d in await h.store.claim_due(now, 10, 600)) == [
        ("alice", "summary"), ("bob", "summary")]
    assert summary.channel == "email"


async def test_a_resolved_notice_waits_for_the_first_one_being_sent(h: Harness) -> None:
    """Alice's first notice is being sent (leased): not cancelled, her resolved notice
    waits behind it; Bob's, still queued, becomes one summary."""
    assert await _fire_then_resolve(h, lease=True) == [("alice", "resolved"),
                                                       ("bob", "summary")]
    alice = [(d.phase, d.status) for d in await h.deliveries() if d.contact_id == "alice"]
    assert alice == [("firing", "pending"), ("resolved", "pending")]
    now = h.clock.now()
    assert [(d.contact_id, d.phase) for d in await h.store.claim_due(now, 10, 600)] == [
        ("bob", "summary")]
    assert await h.store.claim_due(now, 10, 600) == []
    [alice_first] = [d for d in await h.deliveries() if (d.contact_id, d.phase)
                     == ("alice", "firing")]
    await h.store.mark_sent(alice_first.id, now, Receipt(provider_id="m1"))
    assert [(d.contact_id, d.phase) for d in await h.store.claim_due(now, 10, 600)] == [
        ("alice", "resolved")]


async def test_resolved_after_the_first_notice_was_sent(h: Harness) -> None:
    """Sent before the resolution: the usual resolved notice, nothing cancelled."""
    h.send = True
    assert await _fire_then_resolve(h, lease=False) == [("alice", "resolved"),
                                                        ("bob", "resolved")]
    assert {d.status for d in await h.deliveries()} == {"sent"}


async def test_a_claim_racing_the_cancel_falls_back_to_resolved(h: Harness) -> None:
    """The dispatcher claims the queued first notices between the flush's read and its
    commit: the commit conflicts (nothing cancelled) and the next flush plans the
    resolved notices, which follow the first ones."""
    await h.receive(make_alert("DiskFull", starts_at=T_MON_10))
    await h.tick(30)
    await h.receive(make_alert("DiskFull", status="resolved", starts_at=T_MON_10,
                               ends_at=h.clock.now()))
    h.clock.advance(300)
    real = h.store.load_incident

    async def load_then_claim(*args: Any, **kwargs: Any) -> Any:
        snapshot = await real(*args, **kwargs)
        if h.clock.now() >= T_MON_10:  # once: the dispatcher wins the race
            h.store.load_incident = real  # type: ignore[method-assign]
            assert len(await h.store.claim_due(h.clock.now(), 10, 600)) == 2
        return snapshot

    h.store.load_incident = load_then_claim  # type: ignore[method-assign]
    while await h.scheduler.flush_due():
        pass
    rows = sorted((d.contact_id, d.phase, d.status) for d in await h.deliveries())
    assert rows == [("alice", "firing", "pending"), ("alice", "resolved", "pending"),
                    ("bob", "firing", "pending"), ("bob", "resolved", "pending")]
