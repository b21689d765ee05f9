"""PostgreSQL migrations 0003 (acknowledgements) and 0004 (inbound messages) on a
database of an earlier version, and migrations shipped out of order (a gap at 0002).

Against the session's throwaway cluster (tests/services/postgres.py), like
tests/store/test_postgres_store.py.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection

from router.store.postgres import migrate as migrate_module
from router.store.postgres.migrate import available_migrations, migrate
from tests.services.postgres import PostgresServer, postgres_server

_DELIVERY = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text,"
    " created_at, updated_at, deadline_at, segments, fallback_of, dead_letter_reason)"
    " VALUES (%s, 'inc-1', 'fp', 'r', %s, 'sms', '+33600000000', 'c', 'ops', 'critical',"
    " 'en', 's', 't', now(), now(), now(), 2, 7, 'permanent')")
_INCIDENT = (
    "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
    " audiences, decision, meta, opened_at, started_at, updated_at)"
    " VALUES ('inc-1', 'r', 'g', '{}', 'open', 'warning', '[]', '{}', '{}', now(), now(),"
    " now())")
_RECIPIENT = (
    "INSERT INTO incident_recipients (incident_id, audience, contact_id, firing, resolved,"
    " notified_at, seq, channels, announced, held)"
    " VALUES ('inc-1', 'ops', 'c', '[]', '[]', now(), 1, '[]', TRUE, '[]')")


@pytest.fixture
def url(server: PostgresServer) -> str:
    """A new empty database of the cluster."""
    return server.url(server.create_database())


@pytest.fixture
def server() -> PostgresServer:
    """The session's cluster (skip, or fail under TOCSIN_REQUIRE_SERVICES=1, without it)."""
    return postgres_server()


async def _migrate(url: str) -> tuple[int, list[str]]:
    conn = await AsyncConnection.connect(url, autocommit=True)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def _rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return [tuple(r) for r in conn.execute(sql.encode(), params).fetchall()]


def _columns(url: str, table: str) -> dict[str, str]:
    return dict(_rows(url, "SELECT column_name, data_type FROM information_schema.columns"
                           " WHERE table_name = %s ORDER BY ordinal_position", (table,)))


def _indexes(url: str) -> dict[str, str]:
    return dict(_rows(url, "SELECT indexname, indexdef FROM pg_indexes"
                           " WHERE schemaname = current_schema()"))


async def test_0003_and_0004_on_a_v1_database(monkeypatch: pytest.MonkeyPatch,
                                              url: str) -> None:
    """A database of version 1 keeps its rows; the new phases are accepted and unknown
    ones still refused; the new columns are TIMESTAMPTZ with their defaults; the new
    indexes exist, the waiting one partial."""
    shipped = available_migrations()
    monkeypatch.setattr(migrate_module, "available_migrations",
                        lambda: [m for m in shipped if m[0] <= 1])
    assert await _migrate(url) == (1, ["0001_init.sql"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_DELIVERY, ("k1", "firing"))
        conn.execute(_INCIDENT)
        conn.execute(_RECIPIENT)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(_DELIVERY, ("early", "reminder"))
    before = _columns(url, "deliveries")
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: shipped)
    version, applied = await _migrate(url)
    assert (version, applied) == (shipped[-1][0], [m[1] for m in shipped if m[0] > 1])

    assert _columns(url, "deliveries") == before
    assert _rows(url, "SELECT id, phase, segments, fallback_of, dead_letter_reason"
                      " FROM deliveries") == [(1, "firing", 2, 7, "permanent")]
    with psycopg.connect(url, autocommit=True) as conn:
        for phase in ("reminder", "escalation", "acknowledged", "reply"):
            conn.execute(_DELIVERY, (f"new-{phase}", phase))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(_DELIVERY, ("bad", "bogus"))
    incidents = _columns(url, "incidents")
    assert {name: incidents[name] for name in (
        "acknowledged_at", "acknowledged_by_id", "acknowledged_by_name", "ack_channel",
        "escalation_tier", "ack_notified")} == {
        "acknowledged_at": "timestamp with time zone", "acknowledged_by_id": "text",
        "acknowledged_by_name": "text", "ack_channel": "text",
        "escalation_tier": "integer", "ack_notified": "boolean"}
    assert list(_columns(url, "incident_recipients").items())[-4:] == [
        ("asked_at", "timestamp with time zone"),
        ("last_asked_at", "timestamp with time zone"),
        ("answered_at", "timestamp with time zone"), ("reminders", "integer")]
    assert _rows(url, "SELECT escalation_tier, ack_notified, acknowledged_at"
                      " FROM incidents") == [(0, False, None)]
    assert _rows(url, "SELECT asked_at, answered_at, reminders"
                      " FROM incident_recipients") == [(None, None, 0)]
    assert _columns(url, "sms_opt_outs") == {
        "id": "bigint", "phone": "text", "keyword": "text", "at": "timestamp with time zone"}
    assert _columns(url, "inbound_messages") == {
        "kind": "text", "message_id": "text", "seen_at": "timestamp with time zone"}
    indexes = _indexes(url)
    assert {"deliveries_phase", "incident_recipients_waiting", "sms_opt_outs_phone",
            "inbound_messages_seen", "inbound_messages_pkey"} <= set(indexes)
    assert "WHERE ((asked_at IS NOT NULL) AND (answered_at IS NULL))" in indexes[
        "incident_recipients_waiting"]


async def test_a_migration_shipped_later_below_the_version_is_applied(
        monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """A gap in the numbers is fine: a database migrated without one migration (0002,
    another branch's, merged after 0003 and 0004 were deployed) gets it once, later; the
    version stays the highest."""
    shipped = available_migrations()
    missing = shipped[1]
    latest = shipped[-1][0]
    monkeypatch.setattr(migrate_module, "available_migrations",
                        lambda: [m for m in shipped if m != missing])
    assert await _migrate(url) == (latest, [m[1] for m in shipped if m != missing])
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: shipped)
    assert await _migrate(url) == (latest, [missing[1]])
    assert await _migrate(url) == (latest, [])
    assert _rows(url, "SELECT version FROM schema_version ORDER BY 1") == [
        (m[0],) for m in shipped]
