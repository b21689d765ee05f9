"""Claims with a lease on intake rows: what lets several intake workers share the log."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from router.store.base import Store
from tests.store.factories import T0, make_record

LEASE = 60.0


async def test_two_owners_never_claim_the_same_intake_rows(store: Store) -> None:
    """A leased row is skipped by another owner; each row goes to exactly one of them."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(5)])
    first = await store.claim_intake(3, owner="w1", now=T0, lease_s=LEASE)
    second = await store.claim_intake(10, owner="w2", now=T0, lease_s=LEASE)
    assert [i for i, _ in first] == ids[:3]
    assert [i for i, _ in second] == ids[3:]
    assert await store.claim_intake(10, owner="w3", now=T0, lease_s=LEASE) == []


async def test_an_expired_intake_lease_lets_another_owner_take_the_rows(store: Store) -> None:
    """A worker that died holding rows delays them by one lease, never loses them."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(2)])
    await store.claim_intake(10, owner="dead", now=T0, lease_s=LEASE)
    early = T0 + timedelta(seconds=LEASE - 1)
    assert await store.claim_intake(10, owner="w2", now=early, lease_s=LEASE) == []
    late = T0 + timedelta(seconds=LEASE)
    assert [i for i, _ in await store.claim_intake(10, owner="w2", now=late,
                                                    lease_s=LEASE)] == ids


async def test_the_owner_claims_its_rows_again_and_a_commit_releases_them(
        store: Store) -> None:
    """After a failed commit the owner gets its rows back; processed rows are gone."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(3)])
    await store.claim_intake(10, owner="w1", now=T0, lease_s=LEASE)
    again = await store.claim_intake(10, owner="w1", now=T0, lease_s=LEASE)
    assert [i for i, _ in again] == ids
    await store.commit_intake([ids[0], ids[2]], [], [], now=T0)
    assert [i for i, _ in await store.claim_intake(10, owner="w1", now=T0,
                                                    lease_s=LEASE)] == [ids[1]]
    await store.dead_letter_intake([(ids[1], "boom")], now=T0)
    assert await store.claim_intake(10, owner="w2", now=T0, lease_s=LEASE) == []


async def test_claim_after_id_skips_the_batch_in_flight(store: Store) -> None:
    """``after_id`` claims the next batch while the owner's previous one commits."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(4)])
    await store.claim_intake(2, owner="w1", now=T0, lease_s=LEASE)
    nxt = await store.claim_intake(2, owner="w1", now=T0, lease_s=LEASE, after_id=ids[1])
    assert [i for i, _ in nxt] == ids[2:]


#: Several instances share PostgreSQL only (SQLite: one process, claims in id order).
postgres_only = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)


@postgres_only
async def test_a_later_state_of_an_alert_waits_for_the_earlier_one(store: Store) -> None:
    """Firing row held by an owner that died, resolution accepted after it: the resolution
    is not claimed before the firing row is routed, other alerts go on meanwhile."""
    firing = make_record("A", n="1")
    resolved = replace(firing, alert=replace(firing.alert, status="resolved",
                                             ends_at=T0))
    ids = await store.append_intake([firing, make_record("B", n="1")])
    later = await store.append_intake([resolved])
    assert [i for i, _ in await store.claim_intake(1, owner="dead", now=T0,
                                                    lease_s=LEASE)] == ids[:1]
    other = await store.claim_intake(10, owner="w2", now=T0, lease_s=LEASE)
    assert [i for i, _ in other] == ids[1:]  # B, not A's resolution
    await store.commit_intake(ids[1:], [], [], now=T0)
    after = T0 + timedelta(seconds=LEASE)
    taken = await store.claim_intake(10, owner="w2", now=after, lease_s=LEASE)
    assert [i for i, _ in taken] == ids[:1]  # the firing row first, alone
    await store.commit_intake(ids[:1], [], [], now=after)
    assert [i for i, _ in await store.claim_intake(10, owner="w2", now=after,
                                                    lease_s=LEASE)] == later
