"""One service process per SQLite file: the ``<db>.lock`` file lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from router.errors import StoreInUse
from router.store import lock_single_process
from router.store.sqlite.lock import lock_database, lock_path


def test_a_second_lock_is_refused_naming_the_file_and_the_holder(tmp_path: Path) -> None:
    """While one lock is held, another on the same file fails with its path and pid."""
    db = tmp_path / "state" / "tocsin.db"
    held = lock_database(db)
    try:
        with pytest.raises(StoreInUse) as refused:
            lock_database(db)
        message = str(refused.value)
        assert str(db) in message and f"pid {os.getpid()}" in message
        assert str(lock_path(db)) in message
    finally:
        held.release()
    lock_database(db).release()  # free again once released


def test_only_sqlite_files_are_locked(tmp_path: Path) -> None:
    """PostgreSQL (shared by several instances) and in-memory databases take no lock."""
    assert lock_single_process("postgresql://tocsin@db:5432/tocsin") is None
    assert lock_single_process("sqlite:///:memory:") is None
    lock = lock_single_process(f"sqlite:///{tmp_path / 'x.db'}")
    assert lock is not None and lock.path == tmp_path / "x.db.lock"
    lock.release()
    lock.release()  # idempotent
