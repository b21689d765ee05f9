"""The intake batch job: inhibition sources and processed marks, batched per transaction."""

from __future__ import annotations

from router.rules.inhibit import SourceKey
from router.store import Store
from router.store.base import SourceUpdate
from tests.store.factories import T0, make_record
from tests.store.impls import RawDb

KEY = SourceKey("rule-1", "eq-1", False)


def source_rows(db: RawDb) -> list[tuple[str, str, str, int]]:
    """The committed inhibition sources, read through a separate connection."""
    return [(r[0], r[1], r[2], int(r[3])) for r in db.rows(
        "SELECT rule_key, equal_hash, fingerprint, both_sides FROM inhibit_sources"
        " ORDER BY fingerprint")]


async def test_last_source_update_of_a_fingerprint_wins_within_a_batch(
    store: Store, store_url: str,
) -> None:
    """Firing then resolved in one batch leaves no source; the reverse leaves its keys."""
    db = RawDb(store_url)
    await store.commit_intake([], [], [SourceUpdate("a", True, (KEY,)),
                                       SourceUpdate("b", True, (KEY,))], now=T0)
    assert [r[2] for r in source_rows(db)] == ["a", "b"]
    await store.commit_intake([], [], [SourceUpdate("a", False, ()),
                                       SourceUpdate("b", False, ()),
                                       SourceUpdate("b", True, (KEY,))], now=T0)
    assert source_rows(db) == [("rule-1", "eq-1", "b", 0)]


async def test_only_the_given_intake_ids_are_marked_processed(store: Store) -> None:
    """Ids with gaps are marked exactly; rows between them stay unprocessed."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(6)])
    chosen = [ids[0], ids[1], ids[3], ids[5]]
    await store.commit_intake(chosen, [], [], now=T0)
    assert [i for i, _ in await store.fetch_intake(10)] == [ids[2], ids[4]]
