"""One service process per SQLite file: an exclusive lock on ``<db>.lock``.

The embedded store is single-process by design (one writer thread, leases released at
start: :class:`~router.store.sqlite.SqliteStore`). A second ``tocsin serve`` on the same
file would run the intake, the scheduler and the dispatcher beside the first one, and
free the first one's leases when it starts. :func:`lock_database` takes an exclusive,
non-blocking ``flock`` on a file next to the database, held for the life of the process
(the kernel drops it when the process ends, SIGKILL included: no stale lock to clean up);
the file keeps the pid of its holder for the error message. Tools that open the store
next to a running service (``tocsin state backup``, ``tocsin deliveries retry``) do not
take it. Several instances share PostgreSQL instead.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from router.errors import StoreInUse

__all__ = ["DatabaseLock", "lock_database", "lock_path"]


def lock_path(db_path: str | Path) -> Path:
    """The lock file of a database file: ``<db>.lock`` beside it."""
    return Path(f"{db_path}.lock")


class DatabaseLock:
    """A held lock on a database file; :meth:`release` (or the process's end) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock and close (the file stays: removing it would race a new holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def lock_database(db_path: str | Path) -> DatabaseLock:
    """Lock ``db_path`` for this process, or raise :class:`StoreInUse` naming the file and
    the pid of the holder. Creates the database's folder when missing."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StoreInUse(
            f"the state database {db_path} is in use by another Tocsin process (pid "
            f"{holder}; lock {path}): two processes on one SQLite file would both route "
            "and send. Stop the other one, give this one another state_url, or run "
            "several instances on PostgreSQL") from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return DatabaseLock(path, fd)
