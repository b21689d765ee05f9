"""The intake batch job: inhibition sources and processed marks, batched per transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from router.rules.inhibit import SourceKey
from router.store import SqliteStore, Store
from router.store.sqlite.incidents import SourceUpdate
from tests.store.factories import T0, make_record

KEY = SourceKey("rule-1", "eq-1", False)


def source_rows(tmp_path: Path) -> list[tuple[str, str, str, int]]:
    """The committed inhibition sources, read through a separate connection."""
    with sqlite3.connect(tmp_path / "state" / "tocsin.db") as conn:  # the store fixture's file
        return conn.execute("SELECT rule_key, equal_hash, fingerprint, both_sides"
                            " FROM inhibit_sources ORDER BY fingerprint").fetchall()


async def test_last_source_update_of_a_fingerprint_wins_within_a_batch(
    sqlite_store: SqliteStore, tmp_path: Path,
) -> None:
    """Firing then resolved in one batch leaves no source; the reverse leaves its keys."""
    store = sqlite_store
    await store.commit_intake([], [], [SourceUpdate("a", True, (KEY,)),
                                       SourceUpdate("b", True, (KEY,))], now=T0)
    assert [r[2] for r in source_rows(tmp_path)] == ["a", "b"]
    store = sqlite_store
    await store.commit_intake([], [], [SourceUpdate("a", False, ()),
                                       SourceUpdate("b", False, ()),
                                       SourceUpdate("b", True, (KEY,))], now=T0)
    assert source_rows(tmp_path) == [("rule-1", "eq-1", "b", 0)]


async def test_only_the_given_intake_ids_are_marked_processed(store: Store) -> None:
    """Ids with gaps are marked exactly; rows between them stay unprocessed."""
    ids = await store.append_intake([make_record("A", n=str(i)) for i in range(6)])
    chosen = [ids[0], ids[1], ids[3], ids[5]]
    await store.commit_intake(chosen, [], [], now=T0)
    assert [i for i, _ in await store.fetch_intake(10)] == [ids[2], ids[4]]
