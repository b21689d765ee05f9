"""SQLite persistence of incidents: the jobs run by the store's writer and reader threads.

Each ``*_job`` function takes the connection and runs inside one transaction (the
writer's group commit), so an intake batch, its incidents and its timeline commit
together (:mod:`router.store.sqlite.incident_intake`), and a flush (deliveries, notification
log, cancelled held notices, timeline, next timer) is all or nothing. A flush is
optimistic: it was computed from a snapshot, and :func:`commit_flush_job` applies it only
if the incident's ``version`` is unchanged (checked by the ``UPDATE ... WHERE id = ? AND
version = ?`` itself) and every held delivery it replaces can still be cancelled;
otherwise it writes nothing and returns None (the scheduler recomputes).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

import orjson

from router.errors import ConflictError
from router.incidents.flush import FlushResult
from router.incidents.grouping import group_key
from router.incidents.state import (
    HeldNotice,
    Incident,
    IncidentAck,
    IncidentAlert,
    RecipientLog,
    TimelineEvent,
    decision_from_json,
    decision_to_json,
)
from router.models import NewDelivery, RouteDecision
from router.rules.inhibit import InhibitSource, TargetKey
from router.store.base import (
    DueStorm,
    FlushClaim,
    IncidentDetail,
    IncidentSnapshot,
    IncidentSummary,
    SourceUpdate,
    Store,
)
from router.store.sqlite.codec import parse_ts, parse_ts_opt, ts, ts_opt
from router.store.sqlite.incident_intake import apply_intake_job

__all__ = [
    "DueStorm",
    "FlushClaim",
    "IncidentDetail",
    "IncidentSnapshot",
    "IncidentStore",
    "IncidentSummary",
    "SourceUpdate",
    "apply_intake_job",
    "commit_flush_job",
    "commit_storm_job",
    "due_incidents_query",
    "due_storms_query",
    "fold_into_storm",
    "get_incident_query",
    "list_incidents_query",
    "list_intake_query",
    "load_snapshot_query",
    "next_due_query",
    "postpone_storm_job",
    "quarantine_job",
    "recipient_from_row",
    "upgrade_legacy_job",
]

#: The store the incident pipeline needs: all of it (kept for the older name).
IncidentStore = Store

#: Inserts planned notices (``.delivery``, ``.held_until``) in one batch; returns their ids
#: in order (None when an idempotency key already existed).
InsertDeliveries = Callable[[sqlite3.Connection, Sequence[Any]], list[int | None]]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _fast_dumps(value: list[Any]) -> str:
    """:func:`_dumps` of a list of lists of strings and integers (the same text: no
    mapping to sort, compact separators, UTF-8), ten times faster."""
    return orjson.dumps(value).decode()


_INSERT_EVENT = "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (?,?,?,?)"


def _event(conn: sqlite3.Connection, incident: str, at: str, kind: str,
           detail: Mapping[str, Any]) -> None:
    conn.execute(_INSERT_EVENT, (incident, at, kind, _dumps(dict(detail))))


def _alert_from_row(row: sqlite3.Row) -> IncidentAlert:
    return IncidentAlert(
        fingerprint=row["fingerprint"], labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]), status=row["status"],
        starts_at=parse_ts(row["starts_at"]), ends_at=parse_ts_opt(row["ends_at"]),
        generator_url=row["generator_url"], first_seen_at=parse_ts(row["first_seen_at"]),
        last_seen_at=parse_ts(row["last_seen_at"]), sender=row["sender"],
        inhibited=bool(row["inhibited"]))


# --------------------------------------------------------------------------- timers


def due_incidents_query(conn: sqlite3.Connection, now: datetime, limit: int) -> list[str]:
    """Ids of the incidents due at ``now``, earliest first."""
    rows = conn.execute("SELECT id FROM incidents WHERE due_at IS NOT NULL AND due_at <= ?"
                        " ORDER BY due_at, rowid LIMIT ?", (ts(now), limit)).fetchall()
    return [r[0] for r in rows]


def next_due_query(conn: sqlite3.Connection) -> datetime | None:
    """The earliest incident timer."""
    row = conn.execute("SELECT MIN(due_at) FROM incidents WHERE due_at IS NOT NULL").fetchone()
    return parse_ts_opt(row[0])


# --------------------------------------------------------------------------- flush


def _ack_from_row(row: sqlite3.Row) -> IncidentAck | None:
    at = parse_ts_opt(row["acknowledged_at"])
    if at is None:
        return None
    return IncidentAck(at=at, by_name=row["acknowledged_by_name"] or "",
                       channel=row["ack_channel"] or "", by_id=row["acknowledged_by_id"])


def recipient_from_row(r: sqlite3.Row, held: Sequence[HeldNotice] = (),
                       queued: Sequence[HeldNotice] = ()) -> RecipientLog:
    """A notification-log row (``incident_recipients``)."""
    return RecipientLog(
        audience=r["audience"], contact_id=r["contact_id"],
        firing=frozenset(json.loads(r["firing"])),
        resolved=frozenset(json.loads(r["resolved"])),
        notified_at=parse_ts(r["notified_at"]), seq=int(r["seq"]),
        channels=tuple((c[0], c[1], c[2]) for c in json.loads(r["channels"])),
        announced=bool(r["announced"]), held=tuple(held), queued=tuple(queued),
        asked_at=parse_ts_opt(r["asked_at"]), last_asked_at=parse_ts_opt(r["last_asked_at"]),
        answered_at=parse_ts_opt(r["answered_at"]), reminders=int(r["reminders"]))


def _incident_from_row(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"], route_id=row["route_id"], group_key=row["group_key"],
        group_labels=json.loads(row["group_labels"]), state=row["state"],
        decision=decision_from_json(row["decision"]), opened_at=parse_ts(row["opened_at"]),
        started_at=parse_ts(row["started_at"]), updated_at=parse_ts(row["updated_at"]),
        resolved_at=parse_ts_opt(row["resolved_at"]), due_at=parse_ts_opt(row["due_at"]),
        flushed_at=parse_ts_opt(row["flushed_at"]),
        first_notice_at=parse_ts_opt(row["first_notice_at"]),
        follow_ups=int(row["follow_ups"]), version=int(row["version"]),
        meta=json.loads(row["meta"]), ack=_ack_from_row(row),
        escalation_tier=int(row["escalation_tier"]), ack_notified=bool(row["ack_notified"]))


def load_snapshot_query(
    conn: sqlite3.Connection, iid: str, now: datetime,
    target_keys: Callable[[Mapping[str, str]], list[TargetKey]],
    storm_window_s: float | None,
) -> IncidentSnapshot | None:
    """Read everything a flush needs, from one consistent read."""
    row = conn.execute("SELECT * FROM incidents WHERE id = ?", (iid,)).fetchone()
    if row is None:
        return None
    incident = _incident_from_row(row)
    alerts = [_alert_from_row(r) for r in conn.execute(
        "SELECT * FROM incident_alerts WHERE incident_id = ? ORDER BY starts_at, fingerprint",
        (iid,))]
    now_s = ts(now)
    logs: dict[tuple[str, str], RecipientLog] = {}
    # The first notices still pending (index deliveries_first_pending); those held by
    # quiet hours are the recipient's ``held``, the others its ``queued``.
    pending: dict[tuple[str, str], list[HeldNotice]] = {}
    for d in conn.execute(_FIRST_PENDING, (iid,)):
        pending.setdefault((d["audience"], d["contact_id"]), []).append(HeldNotice(
            int(d["id"]), "firing", d["lease_until"] is None or d["lease_until"] <= now_s))
    for r in conn.execute("SELECT * FROM incident_recipients WHERE incident_id = ?", (iid,)):
        held: list[HeldNotice] = []
        for delivery_id, phase in json.loads(r["held"]):
            d = conn.execute("SELECT status, lease_until, next_attempt_at FROM deliveries"
                             " WHERE id = ?", (delivery_id,)).fetchone()
            if d is None or d["status"] != "pending":
                continue  # sent, failed or cancelled: no longer held
            cancellable = d["lease_until"] is None and (d["next_attempt_at"] or "") > now_s
            held.append(HeldNotice(int(delivery_id), phase, cancellable))
        ids = {h.delivery_id for h in held}
        queued = [h for h in pending.get((r["audience"], r["contact_id"]), ())
                  if h.delivery_id not in ids]
        logs[(r["audience"], r["contact_id"])] = recipient_from_row(r, held, queued)
    targets = {alert.fingerprint: tuple(target_keys(alert.labels))
               for alert in alerts if alert.status == "firing"}
    sources: dict[tuple[str, str], tuple[InhibitSource, ...]] = {}
    for keys in targets.values():
        for key in keys:
            pair = (key.rule_key, key.equal)
            if pair not in sources:
                sources[pair] = tuple(
                    InhibitSource(fp, bool(both))
                    for fp, both in conn.execute(_SOURCES, (*pair, *pair)).fetchall())
    storm_recent: dict[str, int] = {}
    if storm_window_s is not None:
        since = ts(now - timedelta(seconds=storm_window_s))
        for audience in incident.decision.audiences:
            n = conn.execute("SELECT COUNT(*) FROM storm_notices WHERE audience = ? AND at >= ?"
                             " AND incident_id != ?", (audience, since, iid)).fetchone()[0]
            storm_recent[audience] = int(n)
    return IncidentSnapshot(incident, alerts, logs, targets, sources, storm_recent)


#: An incident's first notices still pending (queued, leased, held or waiting to retry).
_FIRST_PENDING: Final = (
    "SELECT id, audience, contact_id, lease_until FROM deliveries"
    " WHERE incident_key = ? AND status = 'pending' AND phase = 'firing' ORDER BY id")
#: Cancels a queued first notice, only if still pending and not leased (the rowcount
#: tells whether a dispatcher claimed it meanwhile).
_CANCEL_QUEUED: Final = (
    "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?,"
    " last_error = 'replaced by a summary: the incident resolved before it was sent'"
    " WHERE id = ? AND status = 'pending' AND (lease_until IS NULL OR lease_until <= ?)")


# The firing sources recorded under one (rule_key, equal_hash): at most two of each kind
# (matching both sides or not), which is all the decision needs (is_inhibited_by_keys).
_SOURCES: Final = (
    "SELECT fingerprint, both_sides FROM (SELECT fingerprint, both_sides FROM inhibit_sources"
    " WHERE rule_key = ? AND equal_hash = ? AND both_sides = 0 LIMIT 2) UNION ALL"
    " SELECT fingerprint, both_sides FROM (SELECT fingerprint, both_sides FROM inhibit_sources"
    " WHERE rule_key = ? AND equal_hash = ? AND both_sides = 1 LIMIT 2)"
)


def commit_flush_job(
    conn: sqlite3.Connection, snapshot: IncidentSnapshot, result: FlushResult,
    now: datetime, deadline_s: float, insert: InsertDeliveries,
    storm_window_s: float | None = None,
) -> list[NewDelivery] | None:
    """Apply ``result`` if still valid; return the deliveries inserted, None on conflict."""
    incident = snapshot.incident
    now_s = ts(now)
    for delivery_id in result.cancel:
        d = conn.execute("SELECT status, lease_until, next_attempt_at FROM deliveries"
                         " WHERE id = ?", (delivery_id,)).fetchone()
        if (d is None or d["status"] != "pending" or d["lease_until"] is not None
                or (d["next_attempt_at"] or "") <= now_s):
            return None
    for delivery_id in result.cancel_queued:
        d = conn.execute("SELECT status, lease_until FROM deliveries WHERE id = ?",
                         (delivery_id,)).fetchone()
        if (d is None or d["status"] != "pending"
                or (d["lease_until"] is not None and d["lease_until"] > now_s)):
            return None  # claimed (or sent) meanwhile: the next flush plans `resolved`
    # The version guard is inside the UPDATE (no read-then-write): 0 rows = the incident
    # changed since the snapshot, and nothing at all is written. It goes first so that
    # the rest of the flush is written only by the transaction that won.
    updated = conn.execute(
        "UPDATE incidents SET state = ?, resolved_at = ?, due_at = ?, flushed_at = ?,"
        " first_notice_at = ?, follow_ups = ?, updated_at = ?, version = version + 1,"
        " flush_failures = 0, flush_error = NULL, claimed_by = NULL, lease_until = NULL,"
        " escalation_tier = ?, ack_notified = ?"
        " WHERE id = ? AND version = ?",
        (result.state, ts_opt(result.resolved_at), ts_opt(result.due_at), now_s,
         ts_opt(result.first_notice_at), result.follow_ups, now_s, result.escalation_tier,
         int(result.ack_notified), incident.id, incident.version))
    if updated.rowcount != 1:
        return None
    conn.executemany(
        "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = ?,"
        " last_error = 'replaced by a newer notice while held by quiet hours'"
        " WHERE id = ?", [(now_s, i) for i in result.cancel])
    if result.cancel_queued:
        cancelled = conn.executemany(_CANCEL_QUEUED, [
            (now_s, i, now_s) for i in result.cancel_queued]).rowcount
        if cancelled != len(result.cancel_queued):  # the whole transaction rolls back
            raise ConflictError("a queued first notice was claimed while it was replaced")
    cancelled_n = len(result.cancel) + len(result.cancel_queued)
    if cancelled_n:
        _event(conn, incident.id, now_s, "notice_superseded", {"deliveries": cancelled_n})
    inserted: list[NewDelivery] = []
    held_ids: dict[tuple[str, str], list[list[Any]]] = {}
    for notice, new_id in zip(result.notices, insert(conn, result.notices), strict=True):
        if new_id is None:
            continue
        inserted.append(notice.delivery)
        if notice.held_until is not None and notice.delivery.failed_reason is None:
            held_ids.setdefault((notice.audience, notice.contact_id), []).append(
                [new_id, notice.delivery.phase])
    # The recipients' logs: one statement for all. Most recipients of a fan-out share
    # the same alert sets and channels' shape: their JSON is encoded once.
    encoded: dict[frozenset[str], str] = {}

    def fps(value: frozenset[str]) -> str:
        text = encoded.get(value)
        if text is None:
            text = encoded[value] = _dumps(sorted(value))
        return text

    times: dict[datetime | None, str | None] = {None: None}

    def at(value: datetime | None) -> str | None:
        text = times.get(value)
        if text is None:
            text = times[value] = ts_opt(value)
        return text

    rows = []
    for log in result.logs:
        held = [[h.delivery_id, h.phase] for h in log.held]
        held.extend(held_ids.get((log.audience, log.contact_id), []))
        rows.append((incident.id, log.audience, log.contact_id, fps(log.firing),
                     fps(log.resolved), at(log.notified_at), log.seq,
                     _fast_dumps([list(c) for c in log.channels]), int(log.announced),
                     _fast_dumps(held) if held else "[]", at(log.asked_at),
                     at(log.last_asked_at), at(log.answered_at), log.reminders))
    conn.executemany(
        "INSERT OR REPLACE INTO incident_recipients (incident_id, audience, contact_id,"
        " firing, resolved, notified_at, seq, channels, announced, held, asked_at,"
        " last_asked_at, answered_at, reminders)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    for fp, status in result.alert_status.items():
        conn.execute("UPDATE incident_alerts SET status = ? WHERE incident_id = ?"
                     " AND fingerprint = ?", (status, incident.id, fp))
    for fp, flag in result.inhibited.items():
        conn.execute("UPDATE incident_alerts SET inhibited = ? WHERE incident_id = ?"
                     " AND fingerprint = ?", (int(flag), incident.id, fp))
    for event in result.events:
        _event(conn, incident.id, ts(event.at), event.kind, event.detail)
    for audience in result.storm_counted:
        conn.execute("INSERT OR IGNORE INTO storm_notices (audience, incident_id, at)"
                     " VALUES (?, ?, ?)", (audience, incident.id, now_s))
    if result.storm_folded and storm_window_s is not None:
        decision_json = decision_to_json(incident.decision)
        for audience in result.storm_folded:
            fold_into_storm(conn, audience, incident.id, now, storm_window_s, decision_json,
                            incident.route_id)
        _event(conn, incident.id, now_s, "storm", {"audiences": result.storm_folded})
    return inserted


def quarantine_job(conn: sqlite3.Connection, iid: str, now: datetime, reason: str,
                   error: str, base_s: float, cap_s: float) -> tuple[int, datetime] | None:
    """A flush of ``iid`` raised: push its timer out with exponential back-off.

    The ``n``-th failure in a row waits ``base_s * 2**(n-1)``, at most ``cap_s``; the reason
    goes on the timeline (``flush_failed``). Returns ``(n, retry_at)``, None when the
    incident is gone or no longer has a timer."""
    row = conn.execute("SELECT flush_failures FROM incidents WHERE id = ? AND due_at IS NOT NULL",
                       (iid,)).fetchone()
    if row is None:
        return None
    failures = int(row[0]) + 1
    delay = min(cap_s, base_s * 2.0 ** min(failures - 1, 30))
    retry_at = now + timedelta(seconds=delay)
    now_s = ts(now)
    conn.execute("UPDATE incidents SET due_at = ?, flush_failures = ?, flush_error = ?,"
                 " updated_at = ?, claimed_by = NULL, lease_until = NULL WHERE id = ?",
                 (ts(retry_at), failures, error, now_s, iid))
    _event(conn, iid, now_s, "flush_failed", {
        "reason": reason, "error": error, "failures": failures,
        "retry_at": retry_at.isoformat()})
    return failures, retry_at


def postpone_storm_job(conn: sqlite3.Connection, storm_id: int, until: datetime) -> None:
    """A storm summary failed to plan: due again at ``until``."""
    conn.execute("UPDATE storms SET due_at = ? WHERE id = ? AND sent_at IS NULL",
                 (ts(until), storm_id))


def list_intake_query(conn: sqlite3.Connection, *, status: str, limit: int,
                      offset: int) -> list[dict[str, Any]]:
    """Intake rows by status (``dead``: set aside because routing raised), newest first."""
    if status != "dead":
        raise ValueError(f"unknown intake status {status!r} (known: dead)")
    return [
        {"id": int(r["id"]), "source": r["source"], "received_at": r["received_at"],
         "fingerprint": r["fingerprint"], "dead_at": r["dead_at"],
         "dead_letter_reason": r["dead_letter_reason"], "alert": json.loads(r["alert"])}
        for r in conn.execute(
            "SELECT id, source, received_at, fingerprint, alert, dead_at, dead_letter_reason"
            " FROM intake WHERE dead_at IS NOT NULL ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset))]


# --------------------------------------------------------------------------- API reads


_SUMMARY = (
    "SELECT i.*, (SELECT COUNT(*) FROM incident_alerts a WHERE a.incident_id = i.id"
    " AND a.status = 'firing') AS firing, (SELECT COUNT(*) FROM incident_alerts a"
    " WHERE a.incident_id = i.id) AS total FROM incidents i"
)


#: The route id of an incident opened before route identities: the route's position.
_LEGACY_ROUTE_ID: Final = re.compile(r"root(?:/\d+)*")


def upgrade_legacy_job(conn: sqlite3.Connection,
                       identity: Callable[[str, RouteDecision], str | None]) -> int:
    """Re-key the open incidents opened under a route position (``root/2``).

    ``identity(position, decision snapshot)`` gives the identity of the route now at that
    position when it is the incident's route (None otherwise: the incident keeps its old
    key, stays open and resolves normally). The incident gets that route id and the
    group key it has under it, so the alerts Alertmanager re-sends join it instead of
    opening a second incident. Returns how many were re-keyed.
    """
    cursor = conn.cursor()
    cursor.row_factory = None
    rows = cursor.execute("SELECT id, route_id, group_labels, decision FROM incidents"
                          " WHERE state = 'open'").fetchall()
    done = 0
    for iid, route_id, labels_json, decision_json in rows:
        if not _LEGACY_ROUTE_ID.fullmatch(route_id):
            continue
        decision = decision_from_json(decision_json)
        new_id = identity(route_id, decision)
        if new_id is None:
            continue
        key = group_key(new_id, json.loads(labels_json))
        if cursor.execute("SELECT 1 FROM incidents WHERE group_key = ? AND state = 'open'",
                          (key,)).fetchone() is not None:
            continue  # an incident of the new key is open already: leave this one be
        cursor.execute(
            "UPDATE incidents SET route_id = ?, group_key = ?, decision = ?,"
            " version = version + 1 WHERE id = ?",
            (new_id, key, decision_to_json(replace(decision, route_id=new_id)), iid))
        done += 1
    return done


def _summary(row: sqlite3.Row) -> IncidentSummary:
    # A database of an older schema (read by `rules diff` before the service migrated
    # it) has no acknowledgement columns yet: nothing is acknowledged there.
    acks = "escalation_tier" in row.keys()
    return IncidentSummary(
        id=row["id"], route_id=row["route_id"], state=row["state"], severity=row["severity"],
        audiences=json.loads(row["audiences"]), group_labels=json.loads(row["group_labels"]),
        opened_at=parse_ts(row["opened_at"]), started_at=parse_ts(row["started_at"]),
        updated_at=parse_ts(row["updated_at"]), resolved_at=parse_ts_opt(row["resolved_at"]),
        due_at=parse_ts_opt(row["due_at"]), alerts_firing=int(row["firing"]),
        alerts_total=int(row["total"]), follow_ups=int(row["follow_ups"]),
        flush_failures=int(row["flush_failures"]), flush_error=row["flush_error"],
        ack=_ack_from_row(row) if acks else None,
        escalation_tier=int(row["escalation_tier"]) if acks else 0)


def list_incidents_query(
    conn: sqlite3.Connection, *, state: str | None, route: str | None, audience: str | None,
    limit: int, offset: int,
) -> list[IncidentSummary]:
    """Incidents, newest first, filtered by state, route id and audience."""
    where: list[str] = []
    params: list[object] = []
    if state is not None:
        where.append("i.state = ?")
        params.append(state)
    if route is not None:
        where.append("i.route_id = ?")
        params.append(route)
    if audience is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(i.audiences) WHERE value = ?)")
        params.append(audience)
    sql = _SUMMARY + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY i.opened_at DESC, i.id LIMIT ? OFFSET ?"
    return [_summary(r) for r in conn.execute(sql, (*params, limit, offset))]


def get_incident_query(conn: sqlite3.Connection, iid: str) -> IncidentDetail | None:
    """One incident, its alerts, its timeline and its deliveries (newest last)."""
    row = conn.execute(_SUMMARY + " WHERE i.id = ?", (iid,)).fetchone()
    if row is None:
        return None
    alerts = [_alert_from_row(r) for r in conn.execute(
        "SELECT * FROM incident_alerts WHERE incident_id = ? ORDER BY starts_at, fingerprint",
        (iid,))]
    events = [TimelineEvent(parse_ts(r["at"]), r["kind"], json.loads(r["detail"]))
              for r in conn.execute("SELECT at, kind, detail FROM incident_events"
                                    " WHERE incident_id = ? ORDER BY id", (iid,))]
    deliveries = [dict(r) for r in conn.execute(
        "SELECT id, phase, channel, recipient, audience, status, attempts, created_at,"
        " updated_at, sent_at, next_attempt_at, deferred_until, last_error FROM deliveries"
        " WHERE incident_key = ? ORDER BY id", (iid,))]
    recipients = [recipient_from_row(r) for r in conn.execute(
        "SELECT * FROM incident_recipients WHERE incident_id = ?"
        " ORDER BY audience, contact_id", (iid,))]
    return IncidentDetail(_summary(row), alerts, events, deliveries, recipients)


# --------------------------------------------------------------------------- storms


def fold_into_storm(conn: sqlite3.Connection, audience: str, incident_id: str, now: datetime,
                    window_s: float, decision_json: str, route_id: str) -> None:
    """Record that ``incident_id``'s first notice for ``audience`` joins the open storm."""
    row = conn.execute("SELECT id FROM storms WHERE audience = ? AND sent_at IS NULL"
                       " ORDER BY id LIMIT 1", (audience,)).fetchone()
    if row is None:
        cursor = conn.execute(
            "INSERT INTO storms (audience, opened_at, due_at, route_id, decision)"
            " VALUES (?, ?, ?, ?, ?)",
            (audience, ts(now), ts(now + timedelta(seconds=window_s)), route_id, decision_json))
        storm_id = cursor.lastrowid
    else:
        storm_id = int(row[0])
    conn.execute("INSERT OR REPLACE INTO storm_notices (audience, incident_id, at, storm_id)"
                 " VALUES (?, ?, ?, ?)", (audience, incident_id, ts(now), storm_id))


def due_storms_query(conn: sqlite3.Connection, now: datetime) -> list[DueStorm]:
    """Storm summaries due at ``now`` with the incidents folded into them."""
    out: list[DueStorm] = []
    for row in conn.execute("SELECT * FROM storms WHERE sent_at IS NULL AND due_at <= ?"
                            " ORDER BY due_at, id", (ts(now),)).fetchall():
        items = [_summary(r) for r in conn.execute(
            _SUMMARY + " WHERE i.id IN (SELECT incident_id FROM storm_notices"
            " WHERE storm_id = ?) ORDER BY i.opened_at, i.id", (row["id"],))]
        out.append(DueStorm(int(row["id"]), row["audience"], row["decision"],
                            parse_ts(row["opened_at"]), items))
    return out


def commit_storm_job(conn: sqlite3.Connection, storm_id: int, notices: Sequence[Any],
                     now: datetime, deadline_s: float,
                     insert: InsertDeliveries) -> list[NewDelivery]:
    """Insert a storm summary's deliveries and mark the storm sent (once)."""
    row = conn.execute("SELECT sent_at FROM storms WHERE id = ?", (storm_id,)).fetchone()
    if row is None or row[0] is not None:
        return []
    inserted = [notice.delivery
                for notice, new_id in zip(notices, insert(conn, notices), strict=True)
                if new_id is not None]
    conn.execute("UPDATE storms SET sent_at = ? WHERE id = ?", (ts(now), storm_id))
    return inserted
