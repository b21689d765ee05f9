"""Session-wide: the throwaway PostgreSQL cluster is stopped at the end of the run."""

from __future__ import annotations

import pytest

from tests.services.postgres import stop_postgres


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the PostgreSQL cluster the store tests started (tests/services/postgres.py)."""
    stop_postgres()
