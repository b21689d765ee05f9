"""The inbound log: an SNS MessageId or SMS inboundMessageId acts once, durably."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.store import Store, open_store

T0 = datetime(2026, 12, 6, 14, 0, tzinfo=UTC)


async def test_first_sight_is_new_and_the_second_a_duplicate(store: Store) -> None:
    """remember_inbound answers True once per (kind, id); kinds are separate spaces."""
    assert await store.remember_inbound("sns", "m-1", T0) is True
    assert await store.remember_inbound("sns", "m-1", T0 + timedelta(seconds=5)) is False
    assert await store.remember_inbound("sms", "m-1", T0) is True


async def test_forgotten_id_acts_again(store: Store) -> None:
    """forget_inbound (a failed handling) lets the retry through."""
    await store.remember_inbound("sns", "m-2", T0)
    await store.forget_inbound("sns", "m-2")
    assert await store.remember_inbound("sns", "m-2", T0) is True


async def test_old_ids_are_forgotten_by_later_writes(store: Store) -> None:
    """forget_before drops ids seen before it: the table does not grow forever."""
    await store.remember_inbound("sns", "old", T0)
    await store.remember_inbound("sns", "new", T0 + timedelta(days=2),
                                 forget_before=T0 + timedelta(days=1))
    assert await store.remember_inbound("sns", "old", T0 + timedelta(days=2)) is True
    assert await store.remember_inbound("sns", "new", T0 + timedelta(days=2)) is False


async def test_duplicates_are_known_after_a_restart(store_url: str) -> None:
    """Durable: a reopened store still knows the id."""
    first = open_store(store_url)
    await first.start()
    assert await first.remember_inbound("sms", "in-1", T0) is True
    await first.close()
    second = open_store(store_url)
    await second.start()
    try:
        assert await second.remember_inbound("sms", "in-1", T0) is False
    finally:
        await second.close()
