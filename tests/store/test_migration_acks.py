"""Migration 0010 (acknowledgements) on a database of version 9: nothing lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from router.store.sqlite import migrate as migrate_module
from router.store.sqlite.migrate import available_migrations, migrate
from router.store.sqlite.tools import read_open_incidents

_ROW = ("INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
        " channel, recipient, contact_id, audience, severity, locale, subject, text,"
        " created_at, updated_at, deadline_at, segments, fallback_of, dead_letter_reason,"
        " deferred_until) VALUES (?, 'inc-1', 'fp', 'r', ?, 'sms', '+33600000000', 'c',"
        " 'ops', 'critical', 'en', 's', 't', 'x', 'x', 'x', 2, 7, 'permanent', 'later')")


def _shape(conn: sqlite3.Connection, table: str) -> tuple[list[str], set[str]]:
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    indexes = {r[1] for r in conn.execute(f"PRAGMA index_list({table})")}
    return columns, indexes


def test_0010_keeps_every_delivery_column_index_and_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rebuilt deliveries table has every column and index of v9, its rows, and ids
    that never come back; the new phases are accepted, unknown ones still refused."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    shipped = available_migrations()
    monkeypatch.setattr(migrate_module, "available_migrations",
                        lambda: [m for m in shipped if m[0] <= 9])
    assert migrate(conn) == 9
    conn.execute(_ROW, ("k1", "firing"))
    conn.execute(_ROW, ("k2", "storm"))
    conn.execute("DELETE FROM deliveries WHERE idempotency_key = 'k2'")  # pruned
    columns, indexes = _shape(conn, "deliveries")
    recipients_before, _ = _shape(conn, "incident_recipients")
    monkeypatch.setattr(migrate_module, "available_migrations", lambda: shipped)
    assert migrate(conn) == shipped[-1][0]

    after_columns, after_indexes = _shape(conn, "deliveries")
    assert after_columns == columns
    assert indexes <= after_indexes and "deliveries_phase" in after_indexes
    row = conn.execute("SELECT id, phase, segments, fallback_of, dead_letter_reason,"
                       " deferred_until FROM deliveries").fetchall()
    assert row == [(1, "firing", 2, 7, "permanent", "later")]
    for phase in ("reminder", "escalation", "acknowledged", "reply"):
        conn.execute(_ROW, (f"new-{phase}", phase))
    assert conn.execute("SELECT MIN(id) FROM deliveries WHERE phase = 'reminder'"
                        ).fetchone()[0] == 3  # id 2 (pruned) is not given again
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(_ROW, ("bad", "bogus"))
    recipients_after, _ = _shape(conn, "incident_recipients")
    assert recipients_after[: len(recipients_before)] == recipients_before
    assert recipients_after[len(recipients_before):] == [
        "asked_at", "last_asked_at", "answered_at", "reminders"]
    incident_columns, _ = _shape(conn, "incidents")
    assert {"acknowledged_at", "acknowledged_by_id", "acknowledged_by_name", "ack_channel",
            "escalation_tier", "ack_notified"} <= set(incident_columns)
    assert _shape(conn, "sms_opt_outs")[0] == ["id", "phone", "keyword", "at"]


def test_open_incidents_of_a_v9_database_are_read(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """`rules diff` reads the open incidents of a database the service has not migrated
    yet: no acknowledgement columns, nothing acknowledged."""
    path = tmp_path / "v9.db"
    conn = sqlite3.connect(path, isolation_level=None)
    shipped = available_migrations()
    monkeypatch.setattr(migrate_module, "available_migrations",
                        lambda: [m for m in shipped if m[0] <= 9])
    migrate(conn)
    conn.execute(
        "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
        " audiences, decision, meta, opened_at, started_at, updated_at)"
        " VALUES ('inc-1', '{}', 'g', '{}', 'open', 'warning', '[]', '{}', '{}',"
        " '2024-05-06T10:00:00.000000+00:00', '2024-05-06T10:00:00.000000+00:00',"
        " '2024-05-06T10:00:00.000000+00:00')")
    conn.close()
    [summary] = read_open_incidents(str(path))
    assert (summary.id, summary.ack, summary.escalation_tier) == ("inc-1", None, 0)
