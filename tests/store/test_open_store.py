"""open_store: URL parsing, in-memory stores, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from router.errors import ConfigError
from router.store import PostgresStore, SqliteStore, open_store, sqlite_url
from router.store.sqlite import migrate as migrate_module
from router.store.sqlite.migrate import available_migrations, migrate
from tests.store.factories import T0, make_delivery, make_record


async def test_memory_store_works_end_to_end() -> None:
    """sqlite:///:memory: gives a working store (reads go through the writer)."""
    store = open_store("sqlite:///:memory:")
    await store.start()
    try:
        ids = await store.append_intake([make_record()])
        assert [i for i, _ in await store.fetch_intake(5)] == ids
        assert await store.commit_plan(ids, [make_delivery()], now=T0, deadline_s=5) == 1
        assert (await store.counts())["pending"] == 1
        assert await store.ping()
    finally:
        await store.close()


async def test_relative_path_is_created_with_parent_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///var/x.db is relative to the working directory; var/ is created."""
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///var/x.db?synchronous=normal")
    await store.start()
    await store.close()
    assert (tmp_path / "var" / "x.db").exists()


@pytest.mark.parametrize("url", ["postgresql://db:5433/tocsin", "postgres://u@db/tocsin",
                                 "postgresql+psycopg://db/tocsin?pool_size=3"])
def test_postgres_urls_open_the_postgres_store(url: str) -> None:
    """postgresql:// and postgres:// build (not start) the PostgreSQL store."""
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.target.startswith("db:")


def test_synchronous_defaults_to_full(tmp_path: Path) -> None:
    """Without options, the store fsyncs every commit (synchronous=FULL)."""
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    assert isinstance(store, SqliteStore)
    conn = store._connect()  # the connection factory is the unit under test
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql:///tocsin", "names no host"),
        ("postgresql://db/tocsin?pool_size=0", "pool_size must be >= 1"),
        ("postgresql://db/tocsin?pool_size=x", "pool_size must be an integer"),
        ("mysql://db/tocsin", "unsupported state_url scheme 'mysql'"),
        ("sqlite:///", "no database path"),
        ("sqlite:///x.db?synchronous=off", "synchronous='off'"),
        ("sqlite:///x.db?fsync=1", "unknown state_url option"),
        ("sqlite:///x.db?max_batch=0", "max_batch must be >= 1"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    """An unusable state_url is refused with a message saying why."""
    with pytest.raises(ConfigError, match=message):
        open_store(url)


async def test_migrations_are_versioned_and_applied_once(tmp_path: Path) -> None:
    """schema_version records each migration once; reopening applies nothing again."""
    path = tmp_path / "m.db"
    for _ in range(2):
        store = open_store(f"sqlite:///{path}")
        await store.start()
        await store.close()
    conn = sqlite3.connect(path)
    try:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    finally:
        conn.close()
    assert versions == [v for v, _, _ in available_migrations()]
    assert versions[0] == 1


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer Tocsin is refused, not silently misused."""
    path = tmp_path / "m.db"
    store = open_store(f"sqlite:///{path}")
    await store.start()
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (999, '0999_future.sql', 'x')")
    conn.close()
    store = open_store(f"sqlite:///{path}")
    with pytest.raises(ConfigError, match="schema version 999"):
        await store.start()
    await store.close()


def test_a_migration_below_the_highest_applied_one_is_applied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration shipped with a number below the database's version (0011 merged after
    a database reached 0012) still applies, once."""
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        shipped = available_migrations()
        assert 11 in {v for v, _, _ in shipped} and shipped[-1][0] > 11
        monkeypatch.setattr(migrate_module, "available_migrations",
                            lambda: [m for m in shipped if m[0] != 11])
        assert migrate(conn) == shipped[-1][0]  # every other one: the database is past 11
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                            "'inbound_messages'").fetchone() == (0,)
        monkeypatch.setattr(migrate_module, "available_migrations", lambda: shipped)
        assert migrate(conn) == shipped[-1][0]
        assert migrate(conn) == shipped[-1][0]  # and only once
        versions = [row[0] for row in conn.execute(
            "SELECT version FROM schema_version WHERE version = 11")]
        assert versions == [11]
        assert conn.execute("SELECT count(*) FROM inbound_messages").fetchone() == (0,)
    finally:
        conn.close()


def test_the_file_tools_refuse_a_postgresql_url_naming_its_tools() -> None:
    """``tocsin state backup`` and ``rules diff --state`` work on the SQLite file only."""
    with pytest.raises(ConfigError, match="pg_dump"):
        sqlite_url("postgresql://db/tocsin")
