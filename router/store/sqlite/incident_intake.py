"""The intake batch job: apply a batch of alert events to incidents, in one transaction.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from router.incidents.engine import AlertEvent, change_of, effective_status, next_flush
from router.incidents.grouping import incident_id
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

_CHANGE_KIND: Final = {"new": "alert_joined", "resolved": "alert_resolved",
                       "refired": "alert_refired"}

#: Pending write of one alert row: insert a new row, rewrite it, or touch a duplicate.
_Write = Literal["insert", "update", "touch"]


@dataclass(slots=True)
class _Incident:
    """An open incident as the batch's events leave it."""

    id: str
    opened_at: datetime
    flushed_at: datetime | None
    due_at: datetime | None
    started_at: datetime
    version: int = 0  # as read: the UPDATE applies only if it is unchanged
    changes: int = 0  # events that changed it: its version grows by as much
    opened: AlertEvent | None = None  # the event that opened it in this batch


@dataclass(slots=True)
class _Copy:
    """An incident's copy of one alert as the batch's events leave it."""

    status: str
    starts_at: str
    sender: str
    write: _Write | None = None  # None: the stored row is unchanged so far
    event: AlertEvent | None = None  # the last event that wrote the whole row
    annotations: Mapping[str, str] | None = None  # the last event's (duplicates too)
    ends_at: str | None = None  # likewise


def _json(value: object) -> str:
    """Compact JSON with sorted keys (orjson; the standard encoder for what it refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # e.g. lone surrogates
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


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
    batch = _Batch(cursor, now)
    if events:
        batch.load(events)
        for event in events:
            batch.apply(event)
        batch.write()
    _apply_sources(cursor, sources)
    if intake_ids:
        ids = orjson.dumps(sorted(set(intake_ids))).decode()
        cursor.execute(_MARK_PROCESSED, (batch.now_s, ids))
    dead_letter_intake_job(conn, dead, now)
    return batch.earliest


class _Batch:
    """The in-memory state of the incidents and alerts one intake batch touches."""

    def __init__(self, cursor: sqlite3.Cursor, now: datetime) -> None:
        self.cursor = cursor
        self.now = now
        self.now_s = ts(now)
        self.earliest: datetime | None = None
        self.open: dict[str, _Incident] = {}  # group key -> its open incident
        self.copies: dict[tuple[str, str], _Copy] = {}  # (incident id, fingerprint)
        # fingerprint -> open incidents of other groups holding it firing (_FIRING_IN_OPEN)
        self.strays: dict[str, list[tuple[Any, ...]]] = {}
        self.timeline: list[tuple[str, str, str, str]] = []

    def load(self, events: Sequence[AlertEvent]) -> None:
        """Read the open incidents of the batch's groups and their copies of its alerts."""
        keys = list(dict.fromkeys(event.group_key for event in events))
        for iid, key, opened_at, flushed_at, due_at, started_at, version in self.cursor.execute(
                _OPEN_INCIDENTS, (orjson.dumps(keys).decode(),)):
            self.open[key] = _Incident(iid, parse_ts(opened_at), parse_ts_opt(flushed_at),
                                       parse_ts_opt(due_at), parse_ts(started_at), int(version))
        pairs = list(dict.fromkeys(
            (self.open[event.group_key].id, event.alert.fingerprint)
            for event in events if event.group_key in self.open))
        if pairs:
            for iid, fp, status, starts_at, sender in self.cursor.execute(
                    _KNOWN_ALERTS, (orjson.dumps(pairs).decode(),)):
                self.copies[(iid, fp)] = _Copy(status, starts_at, sender)
        resolved = [event for event in events
                    if effective_status(event.alert, self.now) == "resolved"]
        if resolved:
            routed: dict[str, set[str]] = {}  # fingerprint -> its groups under these rules
            for event in events:
                routed.setdefault(event.alert.fingerprint, set()).add(event.group_key)
            fps = list(dict.fromkeys(event.alert.fingerprint for event in resolved))
            for fp, *row in self.cursor.execute(_FIRING_IN_OPEN,
                                                (orjson.dumps(fps).decode(),)):
                if row[1] not in routed[fp]:
                    self.strays.setdefault(fp, []).append(tuple(row))

    def apply(self, event: AlertEvent) -> None:
        """What one event does, against the state the earlier events of the batch left."""
        alert = event.alert
        status = effective_status(alert, self.now)
        incident = self.open.get(event.group_key)
        copy = None if incident is None else self.copies.get((incident.id, alert.fingerprint))
        if status == "resolved" and self._resolve_strays(event) and incident is None:
            return
        if incident is None:
            if status == "resolved":
                self._late_resolve(event)
                return
            self._open(event, status)
            return
        self._apply_to(incident, event, status, copy)

    def _resolve_strays(self, event: AlertEvent) -> bool:
        """Resolve the alert in the open incidents of other groups that hold it firing.

        They are incidents whose route no longer has the same identity (a reload renamed
        or removed it): the alert now routes to another group, but its resolution still
        belongs to them (docs/rules.md "Route identity"). True when there was one.
        """
        alert = event.alert
        found = False
        for (iid, key, opened_at, flushed_at, due_at, started_at, version, status, starts_at,
             sender) in self.strays.get(alert.fingerprint, ()):
            incident = self.open.get(key)
            if incident is None:
                incident = self.open[key] = _Incident(
                    iid, parse_ts(opened_at), parse_ts_opt(flushed_at), parse_ts_opt(due_at),
                    parse_ts(started_at), int(version))
            copy = self.copies.setdefault((iid, alert.fingerprint),
                                          _Copy(status, starts_at, sender))
            if copy.status == "resolved":
                continue  # already resolved earlier in this batch
            found = True
            self._apply_to(incident, replace(event, group_key=key), "resolved", copy)
        return found

    def _apply_to(self, incident: _Incident, event: AlertEvent,
                  status: Literal["firing", "resolved"], copy: _Copy | None) -> None:
        """Apply ``event`` to the open ``incident`` whose copy of the alert is ``copy``."""
        alert = event.alert
        key = (incident.id, alert.fingerprint)
        starts_at = _starts_text(alert.starts_at)
        change = change_of(None if copy is None else copy.status,
                           copy is not None and copy.starts_at == starts_at, status)
        if change == "duplicate":
            assert copy is not None  # a duplicate is of a known alert
            if copy.write is None:
                copy.write = "touch"
            copy.annotations, copy.ends_at = alert.annotations, ts_opt(alert.ends_at)
            other = event.sender != copy.sender
            self.timeline.append((incident.id, self.now_s, "duplicate", _json({
                "fingerprint": alert.fingerprint, "status": status, "sender": event.sender,
                "why": ("the same alert state from another sender (HA replica)" if other
                        else "the same alert state received again (retry or redelivery)")})))
            return
        if copy is None:
            self.copies[key] = _Copy(status, starts_at, event.sender, "insert", event,
                                     alert.annotations, ts_opt(alert.ends_at))
        else:
            copy.status, copy.starts_at, copy.event = status, starts_at, event
            copy.annotations, copy.ends_at = alert.annotations, ts_opt(alert.ends_at)
            if copy.write != "insert":
                copy.write = "update"
        self.timeline.append((incident.id, self.now_s, _CHANGE_KIND[change],
                              _json(_alert_detail(event))))
        due = next_flush(due_at=incident.due_at, opened_at=incident.opened_at,
                         flushed_at=incident.flushed_at, policy=event.decision.policy,
                         now=self.now)
        incident.due_at = due
        incident.started_at = min(incident.started_at, alert.starts_at)
        incident.changes += 1
        self._planned(due)

    def _open(self, event: AlertEvent, status: str) -> None:
        alert = event.alert
        iid = incident_id(event.group_key, event.intake_id)
        due = next_flush(due_at=None, opened_at=self.now, flushed_at=None,
                         policy=event.decision.policy, now=self.now)
        self.open[event.group_key] = _Incident(iid, self.now, None, due, alert.starts_at,
                                               opened=event)
        self.timeline.append((iid, self.now_s, "opened", _json({
            "route_id": event.decision.route_id, "group_labels": dict(event.group_labels)})))
        self.copies[(iid, alert.fingerprint)] = _Copy(
            status, _starts_text(alert.starts_at), event.sender, "insert", event,
            alert.annotations, ts_opt(alert.ends_at))
        self.timeline.append((iid, self.now_s, "alert_joined", _json(_alert_detail(event))))
        self._planned(due)

    def _late_resolve(self, event: AlertEvent) -> None:
        """A resolved alert with no open incident: note it on the closed one, if any."""
        alert = event.alert
        late = self.cursor.execute(_LATE_RESOLVE, (alert.fingerprint, event.group_key)).fetchone()
        if late is not None:
            self.timeline.append((late[0], self.now_s, "duplicate", _json({
                "fingerprint": alert.fingerprint, "sender": event.sender,
                "why": "resolved alert for an incident already resolved"})))

    def _planned(self, due: datetime) -> None:
        if self.earliest is None or due < self.earliest:
            self.earliest = due

    def write(self) -> None:
        """One write per incident and per alert of the batch, then the timeline."""
        now_s = self.now_s
        opened: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []
        for incident in self.open.values():
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
        for (iid, fp), copy in self.copies.items():
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
        cursor = self.cursor
        if updated:
            cursor.executemany(_UPDATE_INCIDENT, updated)
            if cursor.rowcount != len(updated):  # another writer changed one since load()
                raise IncidentConflict(
                    f"{len(updated) - cursor.rowcount} incident(s) changed during the batch")
        for sql, rows in ((_INSERT_INCIDENT, opened), (_INSERT_ALERT, inserts),
                          (_UPDATE_ALERT, rewrites), (_TOUCH_ALERT, touches),
                          (_INSERT_EVENT, self.timeline)):
            if rows:
                cursor.executemany(sql, rows)


def _alert_detail(event: AlertEvent) -> dict[str, Any]:
    labels = event.alert.labels
    return {"fingerprint": event.alert.fingerprint, "alertname": labels.get("alertname", ""),
            "instance": labels.get("instance", ""), "sender": event.sender,
            "starts_at": _starts_text(event.alert.starts_at)}


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

