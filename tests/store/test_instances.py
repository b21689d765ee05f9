"""The instances role: heartbeats upserted, read back within a window, old ones forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.store import Store
from router.store.base import INSTANCE_FORGET_S

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def test_heartbeat_upserts_and_lists_recent_instances_by_id(store: Store) -> None:
    """A second heartbeat of one id replaces its row; instances are listed by id."""
    await store.heartbeat("tocsin-b", version="1.0", rules_hash="aaaa", started_at=T0, now=T0)
    await store.heartbeat("tocsin-a", version="1.0", rules_hash="aaaa", started_at=T0, now=T0)
    later = T0 + timedelta(seconds=5)
    await store.heartbeat("tocsin-b", version="1.1", rules_hash="bbbb", started_at=T0,
                          now=later)
    seen = await store.instances(later, within_s=30)
    assert [(i.instance_id, i.version, i.rules_hash) for i in seen] == [
        ("tocsin-a", "1.0", "aaaa"), ("tocsin-b", "1.1", "bbbb")]
    assert seen[1].seen_at == later and seen[1].started_at == T0


async def test_instances_not_heard_of_within_the_window_are_left_out(store: Store) -> None:
    """An instance whose last heartbeat is older than ``within_s`` is not listed."""
    await store.heartbeat("gone", version="1", rules_hash="h", started_at=T0, now=T0)
    now = T0 + timedelta(seconds=31)
    await store.heartbeat("alive", version="1", rules_hash="h", started_at=T0, now=now)
    assert [i.instance_id for i in await store.instances(now, within_s=30)] == ["alive"]
    assert [i.instance_id for i in await store.instances(now, within_s=60)] == [
        "alive", "gone"]


async def test_a_heartbeat_forgets_instances_gone_for_a_day(store: Store) -> None:
    """Rows of instances silent for INSTANCE_FORGET_S are deleted by another's heartbeat."""
    await store.heartbeat("old", version="1", rules_hash="h", started_at=T0, now=T0)
    now = T0 + timedelta(seconds=INSTANCE_FORGET_S + 1)
    await store.heartbeat("new", version="1", rules_hash="h", started_at=now, now=now)
    assert [i.instance_id for i in await store.instances(now, within_s=10 * INSTANCE_FORGET_S)
            ] == ["new"]
