"""The embedded SQLite implementation of :mod:`router.store.base` (the default).

Everything SQLite-specific is here and nowhere else: the store (:mod:`.store`, its writer
and reader threads), the SQL jobs it runs on a connection (:mod:`.incident_intake`,
:mod:`.incidents`, :mod:`.outcomes`, :mod:`.lanes`, :mod:`.retention`,
:mod:`.subscriptions`), the row codec, the schema migrations (``migrations/*.sql``) and
the tools that read a database file directly (:mod:`.tools`: online backup, read-only
listing of open incidents for ``tocsin rules diff``).
"""

from __future__ import annotations

from router.store.sqlite.store import SYNCHRONOUS_MODES, SqliteStore

__all__ = ["SYNCHRONOUS_MODES", "SqliteStore"]
