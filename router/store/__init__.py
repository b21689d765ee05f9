"""The state store: intake log and delivery outbox, behind one interface.

The contract is :mod:`router.store.base` (one Protocol per role); ``open_store(url)``
picks the implementation from the URL scheme:

- ``postgresql://user@host:port/db`` (or ``postgres://``): the PostgreSQL store, shared
  by several instances (:mod:`router.store.postgres`); libpq's query parameters
  (``sslmode``, ``connect_timeout``, ...) pass through; ``pool_size=N`` (default 10)
  bounds the connections this process opens, ``pool_timeout_s=S`` (default 5) how long an
  operation waits for one before the store is unavailable (the webhook's 503);
- ``sqlite:///var/tocsin.db`` (relative path), ``sqlite:////abs/path.db``,
  ``sqlite:///:memory:``; options as query parameters:
  ``?synchronous=full|normal`` (default ``full``: durable against power loss; ``normal``
  is durable against a process crash only) and ``max_batch=N`` (group commit size).
"""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from router.errors import ConfigError
from router.store.base import BACKLOG_STAGES, COUNT_KEYS, Backlog, StageBacklog, Store
from router.store.postgres import PostgresStore
from router.store.sqlite import SYNCHRONOUS_MODES, SqliteStore

__all__ = [
    "BACKLOG_STAGES",
    "COUNT_KEYS",
    "Backlog",
    "PostgresStore",
    "SqliteStore",
    "StageBacklog",
    "Store",
    "open_store",
    "sqlite_url",
]

_SQLITE = "sqlite:///"
_POSTGRES = frozenset({"postgresql", "postgres"})


def sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """The database path and the query options of a ``sqlite:///`` state URL (the file
    tools' entry point: a PostgreSQL URL is refused naming its own tools)."""
    if not url.startswith(_SQLITE):
        scheme = url.partition(":")[0] or url
        if scheme.partition("+")[0].lower() in _POSTGRES:
            raise ConfigError(
                "state_url is a PostgreSQL database: this works on the SQLite file only"
                " (for PostgreSQL use its own tools, such as pg_dump and pg_restore)")
        raise ConfigError(
            f"unsupported state_url scheme {scheme!r}: expected 'sqlite:///PATH' "
            "or 'postgresql://USER@HOST:PORT/DB'"
        )
    path, _, query = url[len(_SQLITE):].partition("?")
    if not path:
        raise ConfigError(f"state_url {url!r} has no database path")
    return path, {key: values[-1] for key, values in parse_qs(query).items()}


def open_store(url: str, *, release_leases_on_start: bool = True) -> Store:
    """Build (not start) the store for ``url``; raise ConfigError if it is unusable.

    ``release_leases_on_start=False`` for tools that open the store next to a running
    service (``tocsin deliveries retry``): its in-flight leases must stay held.
    """
    scheme = url.partition(":")[0].partition("+")[0].lower()
    if scheme in _POSTGRES:
        return postgres_store(url)
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


def postgres_store(url: str) -> PostgresStore:
    """The PostgreSQL store of a ``postgresql://`` URL (Tocsin's own options taken out).

    Leases are never released at start there: other instances may hold them.
    """
    parts = urlsplit(url)
    if not parts.hostname and "host" not in parse_qs(parts.query):
        raise ConfigError(f"state_url {redact(url)!r} names no host")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {"pool_size", "pool_timeout_s"}
    options = {key: value for key, value in query if key in ours}
    rest = [(key, value) for key, value in query if key not in ours]
    try:
        pool_size = int(options.get("pool_size", "10"))
    except ValueError as exc:
        raise ConfigError(f"state_url pool_size must be an integer: {exc}") from None
    if pool_size < 1:
        raise ConfigError("state_url pool_size must be >= 1")
    try:
        pool_timeout_s = float(options.get("pool_timeout_s", "5"))
    except ValueError as exc:
        raise ConfigError(f"state_url pool_timeout_s must be a number: {exc}") from None
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    return PostgresStore(conninfo, min_size=1, max_size=pool_size,
                         acquire_timeout_s=pool_timeout_s)


def redact(url: str) -> str:
    """``url`` without the password of its user info."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))
