"""Web Push subscriptions in the store: one per contact and endpoint, listed, removed."""

from __future__ import annotations

from router.store import Store
from tests.store.factories import T0

P256DH = "B" + "A" * 86  # shapes only: the store does not decode the keys
AUTH = "A" * 22


async def test_one_endpoint_for_two_contacts_keeps_both(store: Store) -> None:
    """A shared browser: registered for a second contact, the first keeps its row; the
    same contact registering again keeps its id and gets the new keys, on every row of
    the endpoint; the push service's 404 removes it for both."""
    first = await store.add_push_subscription("ops", "https://push.example/1", P256DH, AUTH,
                                              now=T0)
    dev = await store.add_push_subscription("dev", "https://push.example/1", P256DH,
                                            "B" * 22, now=T0)
    assert dev.id != first.id and dev.contact_id == "dev"
    [ops] = await store.push_subscriptions("ops")
    assert (ops.id, ops.auth) == (first.id, "B" * 22)  # the browser's new keys
    again = await store.add_push_subscription("ops", "https://push.example/1", P256DH,
                                              "C" * 22, now=T0)
    assert again.id == first.id and again.created_at == T0
    assert {s.auth for s in await store.push_subscriptions()} == {"C" * 22}
    assert await store.delete_push_endpoint("https://push.example/1")
    assert await store.push_subscriptions() == []


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
