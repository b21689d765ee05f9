"""The state store: intake log and delivery outbox, behind one interface.

The contract is :mod:`router.store.base` (one Protocol per role); ``open_store(url)``
picks the implementation from the URL scheme:

- ``postgresql://`` (or ``postgres://``): not available yet, refused with a ConfigError;
- ``sqlite:///var/tocsin.db`` (relative path), ``sqlite:////abs/path.db``,
  ``sqlite:///:memory:``; options as query parameters:
  ``?synchronous=full|normal`` (default ``full``: durable against power loss; ``normal``
  is durable against a process crash only) and ``max_batch=N`` (group commit size).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from router.errors import ConfigError
from router.store.base import BACKLOG_STAGES, COUNT_KEYS, Backlog, StageBacklog, Store
from router.store.sqlite import SYNCHRONOUS_MODES, SqliteStore
from router.store.sqlite.lock import DatabaseLock, lock_database

__all__ = [
    "BACKLOG_STAGES",
    "COUNT_KEYS",
    "Backlog",
    "SqliteStore",
    "StageBacklog",
    "Store",
    "lock_single_process",
    "open_store",
    "sqlite_url",
]

_SQLITE = "sqlite:///"
#: Schemes of implementations still to come: refused with a clear message.
_NOT_YET = {"postgresql": "PostgreSQL", "postgres": "PostgreSQL"}


def sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """The database path and the query options of a ``sqlite:///`` state URL."""
    if not url.startswith(_SQLITE):
        scheme = url.partition(":")[0] or url
        raise ConfigError(
            f"unsupported state_url scheme {scheme!r}: expected 'sqlite:///PATH' "
            "(PostgreSQL is not implemented yet)"
        )
    path, _, query = url[len(_SQLITE):].partition("?")
    if not path:
        raise ConfigError(f"state_url {url!r} has no database path")
    return path, {key: values[-1] for key, values in parse_qs(query).items()}


def lock_single_process(url: str) -> DatabaseLock | None:
    """For ``tocsin serve``: lock the SQLite file of ``url`` for this process (raise
    StoreInUse when another holds it); None for stores several processes share
    (PostgreSQL) and for an in-memory database."""
    if not url.startswith(_SQLITE):
        return None
    path, _ = sqlite_url(url)
    return None if path == ":memory:" else lock_database(path)


def open_store(url: str, *, release_leases_on_start: bool = True) -> Store:
    """Build (not start) the store for ``url``; raise ConfigError if it is unusable.

    ``release_leases_on_start=False`` for tools that open the store next to a running
    service (``tocsin deliveries retry``): its in-flight leases must stay held.
    """
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme in _NOT_YET:
        raise ConfigError(
            f"state_url {scheme}://...: the {_NOT_YET[scheme]} store is not available yet;"
            " use 'sqlite:///PATH'")
    path, options = sqlite_url(url)
    unknown = set(options) - {"synchronous", "max_batch"}
    if unknown:
        raise ConfigError(f"unknown state_url option(s): {', '.join(sorted(unknown))}")
    synchronous = options.get("synchronous", "full").upper()
    if synchronous not in SYNCHRONOUS_MODES:
        raise ConfigError(
            f"state_url synchronous={synchronous.lower()!r}: expected one of "
            + ", ".join(sorted(m.lower() for m in SYNCHRONOUS_MODES))
        )
    try:
        max_batch = int(options.get("max_batch", "1000"))
    except ValueError as exc:
        raise ConfigError(f"state_url max_batch must be an integer: {exc}") from None
    if max_batch < 1:
        raise ConfigError("state_url max_batch must be >= 1")
    return SqliteStore(path, synchronous=synchronous, max_batch=max_batch,
                       release_leases_on_start=release_leases_on_start)
