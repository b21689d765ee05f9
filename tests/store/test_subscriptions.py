"""Web Push subscriptions in the store: one per endpoint, listed per contact, removed."""

from __future__ import annotations

from router.store import Store
from tests.store.factories import T0

P256DH = "B" + "A" * 86  # shapes only: the store does not decode the keys
AUTH = "A" * 22


async def test_an_endpoint_registered_again_replaces_its_keys_and_owner(store: Store) -> None:
    """The endpoint is unique: registering it again moves it, keeping its id."""
    first = await store.add_push_subscription("ops", "https://push.example/1", P256DH, AUTH,
                                              now=T0)
    again = await store.add_push_subscription("dev", "https://push.example/1", P256DH,
                                              "B" * 22, now=T0)
    assert again.id == first.id and again.contact_id == "dev" and again.auth == "B" * 22
    assert again.created_at == T0
    assert await store.push_subscriptions("ops") == []
    assert [s.endpoint for s in await store.push_subscriptions("dev")] == [
        "https://push.example/1"]


async def test_subscriptions_are_listed_oldest_first_and_deleted(store: Store) -> None:
    """Per contact or all, oldest first; deleted by id or endpoint, True only once."""
    a = await store.add_push_subscription("ops", "https://push.example/a", P256DH, AUTH, now=T0)
    b = await store.add_push_subscription("ops", "https://push.example/b", P256DH, AUTH, now=T0)
    c = await store.add_push_subscription("dev", "https://push.example/c", P256DH, AUTH, now=T0)
    assert [s.id for s in await store.push_subscriptions()] == [a.id, b.id, c.id]
    assert [s.id for s in await store.push_subscriptions("ops")] == [a.id, b.id]
    assert await store.delete_push_subscription(a.id)
    assert not await store.delete_push_subscription(a.id)
    assert await store.delete_push_endpoint("https://push.example/b")
    assert not await store.delete_push_endpoint("https://push.example/b")
    assert [s.id for s in await store.push_subscriptions()] == [c.id]
