"""The intake batch job: apply a batch of alert events to incidents, in one transaction.

The SQL side only: what the events do to incidents is decided in memory by the pure
:class:`router.incidents.batch.IntakeBatch`; this module reads the state it needs and
writes what it left.

Run by the store's writer thread for every batch the intake processor routed. What it
writes is exactly what applying the events one by one would write (same incidents, same
alert rows, same timeline in the same order, same timers); only the number of
statements differs, because the batch is worked out in memory first:

- two reads for the whole batch: the open incidents of the batch's groups, and those
  incidents' copies of the batch's alerts (one joined lookup over a JSON list of pairs);
- the events are then classified in order against that in-memory state, which each
  event updates as its own write would have (a later event of the batch sees the alert
  and the timer an earlier one left);
- then one write per incident (``INSERT`` of an incident opened by the batch with its
  final timer and start, or one ``UPDATE`` of due/start/version of an existing one) and
  one write per alert (its final state), each kind as one ``executemany``; the timeline
  rows, the inhibition sources and the processed marks likewise.

An incident's ``version`` still grows by one per event that changed it, as before.
The only per-event queries left are for the rare resolved alert that its group's open
incident does not hold: the open incidents of other groups that hold it firing (their
route was renamed or removed by a reload: the resolution is theirs), else the late
resolve of an incident already closed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from router.incidents.batch import AlertCopy, IntakeBatch, OpenIncident
from router.incidents.engine import AlertEvent
from router.incidents.state import decision_to_json
from router.store.base import IncidentConflict, SourceUpdate
from router.store.sqlite.codec import parse_ts, parse_ts_opt, ts, ts_opt

__all__ = ["SourceUpdate", "apply_intake_job", "dead_letter_intake_job", "requeue_intake_job"]


# The open incidents of the batch's groups: ``?`` is a JSON list of group keys (driving
# the join from the list keeps the lookup on the open-group index, one probe per key).
_OPEN_INCIDENTS: Final = (
    "SELECT i.id, i.group_key, i.opened_at, i.flushed_at, i.due_at, i.started_at,"
    " i.version FROM json_each(?) AS j CROSS JOIN incidents AS i"
    " ON i.group_key = j.value AND i.state = 'open'"
)
# The incidents' copies of the batch's alerts: ``?`` is a JSON list of [incident, fp].
_KNOWN_ALERTS: Final = (
    "SELECT a.incident_id, a.fingerprint, a.status, a.starts_at, a.sender"
    " FROM json_each(?) AS j CROSS JOIN incident_alerts AS a"
    " ON a.incident_id = j.value ->> 0 AND a.fingerprint = j.value ->> 1"
)
_LATE_RESOLVE: Final = (
    "SELECT i.id FROM incidents i JOIN incident_alerts a ON a.incident_id = i.id"
    " AND a.fingerprint = ? WHERE i.group_key = ? ORDER BY i.opened_at DESC LIMIT 1"
)
# The open incidents that hold the batch's resolved alerts firing (``?``: a JSON list of
# fingerprints). Those outside the groups the alert routes to now are strays: their route
# lost its identity in a reload (renamed, removed), and the resolution is theirs too.
_FIRING_IN_OPEN: Final = (
    "SELECT a.fingerprint, i.id, i.group_key, i.opened_at, i.flushed_at, i.due_at,"
    " i.started_at, i.version, a.status, a.starts_at, a.sender"
    " FROM json_each(?) AS j CROSS JOIN incident_alerts AS a ON a.fingerprint = j.value"
    " JOIN incidents AS i ON i.id = a.incident_id AND i.state = 'open'"
    " WHERE a.status = 'firing'"
)
_INSERT_INCIDENT: Final = (
    "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
    " audiences, decision, meta, opened_at, started_at, updated_at, due_at, version)"
    " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_INCIDENT: Final = (
    "UPDATE incidents SET due_at = ?, updated_at = ?, started_at = ?,"
    " version = version + ? WHERE id = ? AND version = ?"
)
_INSERT_ALERT: Final = (
    "INSERT INTO incident_alerts (incident_id, fingerprint, labels, annotations, status,"
    " starts_at, ends_at, generator_url, first_seen_at, last_seen_at, sender)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_ALERT: Final = (
    "UPDATE incident_alerts SET labels = ?, annotations = ?, status = ?, starts_at = ?,"
    " ends_at = ?, generator_url = ?, last_seen_at = ? WHERE incident_id = ?"
    " AND fingerprint = ?"
)
_TOUCH_ALERT: Final = (  # a duplicate: seen again, same state
    "UPDATE incident_alerts SET last_seen_at = ?, annotations = ?, ends_at = ?"
    " WHERE incident_id = ? AND fingerprint = ?"
)
_INSERT_EVENT: Final = (
    "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?,?,?,?)"
)
# ``?``: a JSON list of intake ids (any ids: nothing assumes they are consecutive).
_MARK_PROCESSED: Final = (
    "UPDATE intake SET processed_at = ?, claimed_by = NULL, lease_until = NULL"
    " WHERE id IN (SELECT value FROM json_each(?)) AND processed_at IS NULL"
)

_MARK_DEAD: Final = (
    "UPDATE intake SET dead_at = ?, dead_letter_reason = ?, claimed_by = NULL,"
    " lease_until = NULL WHERE id = ?"
    " AND processed_at IS NULL"
)

def dead_letter_intake_job(conn: sqlite3.Connection, dead: Sequence[tuple[int, str]],
                           now: datetime) -> None:
    """Set intake rows aside: ``(id, reason)`` dead-lettered, not processed (never fetched
    again until replayed with :func:`requeue_intake_job`)."""
    if dead:
        conn.executemany(_MARK_DEAD, [(ts(now), reason[:500], intake_id)
                                      for intake_id, reason in dead])


def requeue_intake_job(conn: sqlite3.Connection, ids: Sequence[int] | None) -> list[int]:
    """Dead-lettered intake rows back to unprocessed (all of them when ``ids`` is None)."""
    where = "dead_at IS NOT NULL"
    params: list[object] = []
    if ids is not None:
        if not ids:
            return []
        where += " AND id IN (SELECT value FROM json_each(?))"
        params.append(orjson.dumps(list(ids)).decode())
    rows = conn.execute("UPDATE intake SET dead_at = NULL, dead_letter_reason = NULL"
                        f" WHERE {where} RETURNING id", params).fetchall()
    return sorted(int(r[0]) for r in rows)


def apply_intake_job(
    conn: sqlite3.Connection, intake_ids: Sequence[int], events: Sequence[AlertEvent],
    sources: Sequence[SourceUpdate], now: datetime,
    dead: Sequence[tuple[int, str]] = (),
) -> datetime | None:
    """Apply every event to its incident, update inhibition sources, mark intake processed.

    ``dead``: rows whose routing raised, ``(id, reason)``, dead-lettered in the same
    transaction (not in ``intake_ids``). Returns the earliest timer this batch set (None
    when no timer changed).
    """
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples
    batch = IntakeBatch(now, time_text=_starts_text)
    if events:
        _load(cursor, batch, events)
        for event in events:
            batch.apply(event)
        _write(cursor, batch)
    _apply_sources(cursor, sources)
    if intake_ids:
        ids = orjson.dumps(sorted(set(intake_ids))).decode()
        cursor.execute(_MARK_PROCESSED, (batch.now_s, ids))
    dead_letter_intake_job(conn, dead, now)
    return batch.earliest


def _load(cursor: sqlite3.Cursor, batch: IntakeBatch, events: Sequence[AlertEvent]) -> None:
    """Read what the batch's events need: the open incidents of their groups, those
    incidents' copies of their alerts, and for resolved alerts the open incidents of other
    groups that hold them firing and the closed incident a late resolve belongs to."""
    keys = list(dict.fromkeys(event.group_key for event in events))
    for iid, key, opened_at, flushed_at, due_at, started_at, version in cursor.execute(
            _OPEN_INCIDENTS, (orjson.dumps(keys).decode(),)):
        batch.open[key] = OpenIncident(iid, parse_ts(opened_at), parse_ts_opt(flushed_at),
                                       parse_ts_opt(due_at), parse_ts(started_at), int(version))
    pairs = list(dict.fromkeys(
        (batch.open[event.group_key].id, event.alert.fingerprint)
        for event in events if event.group_key in batch.open))
    if pairs:
        for iid, fp, status, starts_at, sender in cursor.execute(
                _KNOWN_ALERTS, (orjson.dumps(pairs).decode(),)):
            batch.copies[(iid, fp)] = AlertCopy(status, starts_at, sender)
    resolved = IntakeBatch.resolved_events(events, batch.now)
    if not resolved:
        return
    routed = batch.routed_groups(events)
    fps = list(dict.fromkeys(event.alert.fingerprint for event in resolved))
    for (fp, iid, key, opened_at, flushed_at, due_at, started_at, version, status, starts_at,
         sender) in cursor.execute(_FIRING_IN_OPEN, (orjson.dumps(fps).decode(),)):
        if key not in routed[fp]:
            batch.strays.setdefault(fp, []).append((key, OpenIncident(
                iid, parse_ts(opened_at), parse_ts_opt(flushed_at), parse_ts_opt(due_at),
                parse_ts(started_at), int(version)), AlertCopy(status, starts_at, sender)))
    for event in resolved:  # a resolve whose group has no open incident: maybe a late one
        pair = (event.alert.fingerprint, event.group_key)
        if event.group_key not in batch.open and pair not in batch.closed:
            late = cursor.execute(_LATE_RESOLVE, pair).fetchone()
            if late is not None:
                batch.closed[pair] = str(late[0])


def _write(cursor: sqlite3.Cursor, batch: IntakeBatch) -> None:
    """One write per incident and per alert of the batch, then the timeline."""
    now_s = batch.now_s
    opened: list[tuple[Any, ...]] = []
    updated: list[tuple[Any, ...]] = []
    for incident in batch.open.values():
        event = incident.opened
        due_s = ts_opt(incident.due_at)
        if event is not None:
            decision = event.decision
            opened.append((
                incident.id, decision.route_id, event.group_key,
                _json(dict(event.group_labels)), decision.severity,
                _json(list(decision.audiences)), decision_to_json(decision),
                _json(dict(event.meta)), now_s, ts(incident.started_at), now_s, due_s,
                1 + incident.changes))
        elif incident.changes:
            updated.append((due_s, now_s, ts(incident.started_at), incident.changes,
                            incident.id, incident.version))
    inserts: list[tuple[Any, ...]] = []
    rewrites: list[tuple[Any, ...]] = []
    touches: list[tuple[Any, ...]] = []
    for (iid, fp), copy in batch.copies.items():
        if copy.write is None:
            continue
        annotations = _json(dict(copy.annotations or {}))
        if copy.write == "touch":
            touches.append((now_s, annotations, copy.ends_at, iid, fp))
            continue
        assert copy.event is not None  # set with every insert/update
        alert = copy.event.alert
        if copy.write == "insert":
            inserts.append((iid, fp, _json(dict(alert.labels)), annotations, copy.status,
                            copy.starts_at, copy.ends_at, alert.generator_url, now_s,
                            now_s, copy.sender))
        else:
            rewrites.append((_json(dict(alert.labels)), annotations, copy.status,
                             copy.starts_at, copy.ends_at, alert.generator_url, now_s,
                             iid, fp))
    if updated:
        cursor.executemany(_UPDATE_INCIDENT, updated)
        if cursor.rowcount != len(updated):  # another writer changed one since load()
            raise IncidentConflict(
                f"{len(updated) - cursor.rowcount} incident(s) changed during the batch")
    for sql, rows in ((_INSERT_INCIDENT, opened), (_INSERT_ALERT, inserts),
                      (_UPDATE_ALERT, rewrites), (_TOUCH_ALERT, touches),
                      (_INSERT_EVENT, batch.timeline)):
        if rows:
            cursor.executemany(sql, rows)


_STARTS_TEXT: dict[datetime, str] = {}
_STARTS_TEXT_MAX: Final = 4096


def _starts_text(value: datetime) -> str:
    """:func:`ts`, memoised: many alerts of a batch share a ``startsAt``."""
    text = _STARTS_TEXT.get(value)
    if text is None:
        if len(_STARTS_TEXT) >= _STARTS_TEXT_MAX:
            _STARTS_TEXT.clear()
        text = _STARTS_TEXT[value] = ts(value)
    return text


def _json(value: object) -> str:
    """Compact JSON with sorted keys (orjson; the standard encoder for what it refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # e.g. lone surrogates
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _apply_sources(cursor: sqlite3.Cursor, sources: Sequence[SourceUpdate]) -> None:
    """Replace the inhibition sources of every fingerprint of the batch (last update wins)."""
    if not sources:
        return
    last = {update.fingerprint: update for update in sources}
    cursor.execute("DELETE FROM inhibit_sources WHERE fingerprint IN"
                   " (SELECT value FROM json_each(?))", (orjson.dumps(list(last)).decode(),))
    rows = [(k.rule_key, k.equal, fp, int(k.both))
            for fp, update in last.items() if update.firing for k in update.keys]
    if rows:
        cursor.executemany(
            "INSERT OR REPLACE INTO inhibit_sources (rule_key, equal_hash, fingerprint,"
            " both_sides) VALUES (?, ?, ?, ?)", rows)

