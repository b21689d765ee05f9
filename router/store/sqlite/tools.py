"""What tools do to a SQLite state database file directly, beside a running service.

- :func:`backup_database`: SQLite's online backup into another file, checked and made
  self-contained (``tocsin state backup``);
- :func:`read_open_incidents`: the open incidents, through a read-only connection
  (``tocsin rules diff --state``).

Neither lets a driver error out: a file that cannot be read or written (missing, locked,
damaged, not a Tocsin database) is a :class:`~router.errors.StoreError`, the driver's
error as its ``__cause__``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from router.errors import StoreError
from router.store.base import IncidentSummary
from router.store.sqlite.incidents import list_incidents_query
from router.store.sqlite.writer import store_error

__all__ = ["backup_database", "read_open_incidents"]

_PAGE = 500
T = TypeVar("T")


def _driver_errors_translated(fn: Callable[[], T]) -> T:
    """``fn()``, its sqlite3 errors raised as StoreError (StoreUnavailable when they are
    the database's, not a job's)."""
    try:
        return fn()
    except sqlite3.Error as exc:
        failure = store_error(exc)
        raise (failure if failure is not exc else StoreError(str(exc))) from exc


def backup_database(source: Path, dest: Path, *, busy_timeout_s: float) -> int:
    """Online-backup ``source`` into ``dest``, check it, switch it out of WAL mode, fsync
    it; return its schema version. Raises StoreError or OSError on failure."""
    return _driver_errors_translated(lambda: _backup(source, dest, busy_timeout_s))


def _backup(source: Path, dest: Path, busy_timeout_s: float) -> int:
    src = sqlite3.connect(source, timeout=busy_timeout_s)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"the copy failed its check: {check}")
            dst.execute("PRAGMA journal_mode=DELETE")
            version = int(dst.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])
        finally:
            dst.close()
    finally:
        src.close()
    with dest.open("rb") as handle:
        os.fsync(handle.fileno())
    return version


def read_open_incidents(path: str) -> list[IncidentSummary]:
    """The open incidents of the database at ``path``, read only (nothing is written, no
    lock is held beyond each page). Raises StoreError when it cannot be read."""
    return _driver_errors_translated(lambda: _read_open(path))


def _read_open(path: str) -> list[IncidentSummary]:
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:
        found: list[IncidentSummary] = []
        while True:
            page = list_incidents_query(conn, state="open", route=None, audience=None,
                                        limit=_PAGE, offset=len(found))
            found.extend(page)
            if len(page) < _PAGE:
                return found
    finally:
        conn.close()
