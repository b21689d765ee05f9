"""The PostgreSQL store: several Tocsin instances on one database (``postgresql://``)."""

from router.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
