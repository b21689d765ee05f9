"""PostgreSQL persistence of incidents: the jobs the store runs, each in one transaction.

The same work as :mod:`router.store.sqlite.incidents` and
:mod:`router.store.sqlite.incident_intake`, against several writers at once: an intake
batch reads, works out in memory (:class:`router.incidents.batch.IntakeBatch`), then
writes each incident under its ``version`` (``UPDATE ... WHERE id = %s AND version =
%s``); a row another instance changed meanwhile, or a group it opened first (the unique
index of open groups), is a conflict (:class:`~router.store.base.IncidentConflict`) and
nothing of the batch is written. A flush applies only if its incident's version is
unchanged, otherwise it writes nothing and returns None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from router.errors import ConflictError
from router.incidents.batch import AlertCopy, IntakeBatch, OpenIncident
from router.incidents.engine import AlertEvent
from router.incidents.flush import FlushResult, PlannedNotice
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
    IncidentConflict,
    IncidentDetail,
    IncidentSnapshot,
    IncidentSummary,
    SourceUpdate,
)
from router.store.postgres import queries as q
from router.store.postgres.codec import Row, text_opt, utc, utc_opt
from router.store.sqlite.codec import ts

__all__ = [
    "InsertDelivery",
    "apply_intake",
    "commit_flush",
    "commit_storm",
    "dead_letter_intake",
    "due_storms",
    "get_incident",
    "list_incidents",
    "list_intake",
    "load_snapshot",
    "quarantine",
    "recipient_from_row",
    "requeue_intake",
    "upgrade_legacy",
]

Conn = AsyncConnection[Any]
#: Inserts one delivery, returns its id (None when its idempotency key already existed).
InsertDelivery = Callable[[Conn, NewDelivery], Awaitable[int | None]]


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _json(value: object) -> str:
    """Compact JSON with sorted keys, as the SQLite store writes it."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return _dumps(value)


async def _dicts(conn: Conn, sql: Any, params: Any = None) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def _tuples(conn: Conn, sql: Any, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql, params)
    return list(await cur.fetchall())


async def _event(conn: Conn, incident: str, at: datetime, kind: str,
                 detail: Mapping[str, Any]) -> None:
    await conn.execute(q.INSERT_EVENT, (incident, at, kind, _dumps(dict(detail))))


# --------------------------------------------------------------------------- intake batch


async def dead_letter_intake(conn: Conn, dead: Sequence[tuple[int, str]],
                             now: datetime) -> None:
    """Set intake rows aside: ``(id, reason)`` dead-lettered, not processed."""
    if dead:
        async with conn.cursor() as cur:
            await cur.executemany(q.MARK_DEAD, [(now, reason[:500], intake_id)
                                                for intake_id, reason in dead])


async def requeue_intake(conn: Conn, ids: Sequence[int] | None) -> list[int]:
    """Dead-lettered intake rows back to unprocessed (all of them when ``ids`` is None)."""
    if ids is None:
        rows = await _tuples(conn, q.REQUEUE_ALL_INTAKE)
    elif not ids:
        return []
    else:
        rows = await _tuples(conn, q.REQUEUE_INTAKE, (list(ids),))
    return sorted(int(r[0]) for r in rows)


def _open(row: Sequence[Any]) -> OpenIncident:
    iid, opened_at, flushed_at, due_at, started_at, version = row
    return OpenIncident(str(iid), utc(opened_at), utc_opt(flushed_at), utc_opt(due_at),
                        utc(started_at), int(version))


async def apply_intake(
    conn: Conn, intake_ids: Sequence[int], events: Sequence[AlertEvent],
    sources: Sequence[SourceUpdate], now: datetime, dead: Sequence[tuple[int, str]] = (),
) -> datetime | None:
    """Apply every event to its incident, update inhibition sources, mark intake processed.

    Raises IncidentConflict (nothing written, the transaction rolls back) when an
    incident changed since it was read. Returns the earliest timer this batch set.
    """
    batch = IntakeBatch(now, time_text=ts)
    if events:
        await _load(conn, batch, events)
        for event in events:
            batch.apply(event)
        await _write(conn, batch)
    await _apply_sources(conn, sources)
    if intake_ids:
        await conn.execute(q.MARK_PROCESSED, (now, sorted(set(intake_ids))))
    await dead_letter_intake(conn, dead, now)
    return batch.earliest


async def _load(conn: Conn, batch: IntakeBatch, events: Sequence[AlertEvent]) -> None:
    """Read what the batch's events need (see :func:`router.store.sqlite.incident_intake`)."""
    keys = list(dict.fromkeys(event.group_key for event in events))
    for iid, key, opened_at, flushed_at, due_at, started_at, version in await _tuples(
            conn, q.OPEN_INCIDENTS, (keys,)):
        batch.open[key] = _open((iid, opened_at, flushed_at, due_at, started_at, version))
    pairs = list(dict.fromkeys(
        (batch.open[event.group_key].id, event.alert.fingerprint)
        for event in events if event.group_key in batch.open))
    if pairs:
        for iid, fp, status, starts_at, sender in await _tuples(
                conn, q.KNOWN_ALERTS, ([p[0] for p in pairs], [p[1] for p in pairs])):
            batch.copies[(iid, fp)] = AlertCopy(status, ts(starts_at), sender)
    resolved = IntakeBatch.resolved_events(events, batch.now)
    if not resolved:
        return
    routed = batch.routed_groups(events)
    fps = list(dict.fromkeys(event.alert.fingerprint for event in resolved))
    for (fp, iid, key, opened_at, flushed_at, due_at, started_at, version, status, starts_at,
         sender) in await _tuples(conn, q.FIRING_IN_OPEN, (fps,)):
        if key not in routed[fp]:
            batch.strays.setdefault(fp, []).append((key, _open(
                (iid, opened_at, flushed_at, due_at, started_at, version)),
                AlertCopy(status, ts(starts_at), sender)))
    for event in resolved:
        pair = (event.alert.fingerprint, event.group_key)
        if event.group_key not in batch.open and pair not in batch.closed:
            late = await _tuples(conn, q.LATE_RESOLVE, pair)
            if late:
                batch.closed[pair] = str(late[0][0])


async def _write(conn: Conn, batch: IntakeBatch) -> None:
    """One write per incident and per alert of the batch, then the timeline."""
    now_s = batch.now_s
    opened: list[tuple[Any, ...]] = []
    updated: list[tuple[Any, ...]] = []
    for incident in batch.open.values():
        event = incident.opened
        if event is not None:
            decision = event.decision
            opened.append((
                incident.id, decision.route_id, event.group_key,
                _json(dict(event.group_labels)), decision.severity,
                _json(list(decision.audiences)), decision_to_json(decision),
                _json(dict(event.meta)), batch.now, incident.started_at, batch.now,
                incident.due_at, 1 + incident.changes))
        elif incident.changes:
            updated.append((incident.due_at, batch.now, incident.started_at, incident.changes,
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
        assert copy.event is not None
        alert = copy.event.alert
        if copy.write == "insert":
            inserts.append((iid, fp, _json(dict(alert.labels)), annotations, copy.status,
                            copy.starts_at, copy.ends_at, alert.generator_url, now_s,
                            now_s, copy.sender))
        else:
            rewrites.append((_json(dict(alert.labels)), annotations, copy.status,
                             copy.starts_at, copy.ends_at, alert.generator_url, now_s,
                             iid, fp))
    async with conn.cursor() as cur:
        if updated:
            await cur.executemany(q.UPDATE_INCIDENT, updated)
            if cur.rowcount != len(updated):  # another instance changed one since _load
                raise IncidentConflict(
                    f"{len(updated) - cur.rowcount} incident(s) changed during the batch")
        for sql, rows in ((q.INSERT_INCIDENT, opened), (q.INSERT_ALERT, inserts),
                          (q.UPDATE_ALERT, rewrites), (q.TOUCH_ALERT, touches),
                          (q.INSERT_EVENT, batch.timeline)):
            if rows:
                await cur.executemany(sql, rows)


async def _apply_sources(conn: Conn, sources: Sequence[SourceUpdate]) -> None:
    """Replace the inhibition sources of every fingerprint of the batch (last update wins)."""
    if not sources:
        return
    last = {update.fingerprint: update for update in sources}
    await conn.execute(q.DELETE_SOURCES, (list(last),))
    rows = [(k.rule_key, k.equal, fp, bool(k.both))
            for fp, update in last.items() if update.firing for k in update.keys]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(q.INSERT_SOURCE, rows)


# --------------------------------------------------------------------------- flush


def _alert_from_row(row: Row) -> IncidentAlert:
    return IncidentAlert(
        fingerprint=row["fingerprint"], labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]), status=row["status"],
        starts_at=utc(row["starts_at"]), ends_at=utc_opt(row["ends_at"]),
        generator_url=row["generator_url"], first_seen_at=utc(row["first_seen_at"]),
        last_seen_at=utc(row["last_seen_at"]), sender=row["sender"],
        inhibited=bool(row["inhibited"]))


def _ack_from_row(row: Row) -> IncidentAck | None:
    at = utc_opt(row["acknowledged_at"])
    if at is None:
        return None
    return IncidentAck(at=at, by_name=row["acknowledged_by_name"] or "",
                       channel=row["ack_channel"] or "", by_id=row["acknowledged_by_id"])


def recipient_from_row(r: Row, held: Sequence[HeldNotice] = (),
                       queued: Sequence[HeldNotice] = ()) -> RecipientLog:
    """A notification-log row (``incident_recipients``)."""
    return RecipientLog(
        audience=r["audience"], contact_id=r["contact_id"],
        firing=frozenset(json.loads(r["firing"])),
        resolved=frozenset(json.loads(r["resolved"])),
        notified_at=utc(r["notified_at"]), seq=int(r["seq"]),
        channels=tuple((c[0], c[1], c[2]) for c in json.loads(r["channels"])),
        announced=bool(r["announced"]), held=tuple(held), queued=tuple(queued),
        asked_at=utc_opt(r["asked_at"]), last_asked_at=utc_opt(r["last_asked_at"]),
        answered_at=utc_opt(r["answered_at"]), reminders=int(r["reminders"]))


def _incident_from_row(row: Row) -> Incident:
    return Incident(
        id=row["id"], route_id=row["route_id"], group_key=row["group_key"],
        group_labels=json.loads(row["group_labels"]), state=row["state"],
        decision=decision_from_json(row["decision"]), opened_at=utc(row["opened_at"]),
        started_at=utc(row["started_at"]), updated_at=utc(row["updated_at"]),
        resolved_at=utc_opt(row["resolved_at"]), due_at=utc_opt(row["due_at"]),
        flushed_at=utc_opt(row["flushed_at"]),
        first_notice_at=utc_opt(row["first_notice_at"]),
        follow_ups=int(row["follow_ups"]), version=int(row["version"]),
        meta=json.loads(row["meta"]), ack=_ack_from_row(row),
        escalation_tier=int(row["escalation_tier"]), ack_notified=bool(row["ack_notified"]))


def _cancellable(row: Row | None, now: datetime) -> bool:
    """A held delivery can still be replaced: pending, not leased, not yet due."""
    return (row is not None and row["status"] == "pending" and row["lease_until"] is None
            and row["next_attempt_at"] is not None and row["next_attempt_at"] > now)


async def load_snapshot(
    conn: Conn, iid: str, now: datetime,
    target_keys: Callable[[Mapping[str, str]], list[TargetKey]],
    storm_window_s: float | None,
) -> IncidentSnapshot | None:
    """Read everything a flush needs (the caller runs it in one REPEATABLE READ snapshot)."""
    rows = await _dicts(conn, q.INCIDENT, (iid,))
    if not rows:
        return None
    incident = _incident_from_row(rows[0])
    alerts = [_alert_from_row(r) for r in await _dicts(conn, q.INCIDENT_ALERTS, (iid,))]
    recipients = await _dicts(conn, q.INCIDENT_RECIPIENTS, (iid,))
    helds = {r["incident_id"] + r["audience"] + r["contact_id"]: json.loads(r["held"])
             for r in recipients}
    wanted = sorted({int(d) for held in helds.values() for d, _ in held})
    states = {int(r["id"]): r for r in await _dicts(conn, q.DELIVERY_STATE, (wanted,))} \
        if wanted else {}
    # The first notices still pending (index deliveries_first_pending); those held by
    # quiet hours are the recipient's ``held``, the others its ``queued``.
    pending: dict[tuple[str, str], list[HeldNotice]] = {}
    for row in await _dicts(conn, q.FIRST_PENDING, (iid,)):
        pending.setdefault((row["audience"], row["contact_id"]), []).append(HeldNotice(
            int(row["id"]), "firing", row["lease_until"] is None or row["lease_until"] <= now))
    logs: dict[tuple[str, str], RecipientLog] = {}
    for r in recipients:
        held: list[HeldNotice] = []
        for delivery_id, phase in helds[r["incident_id"] + r["audience"] + r["contact_id"]]:
            d = states.get(int(delivery_id))
            if d is None or d["status"] != "pending":
                continue  # sent, failed or cancelled: no longer held
            held.append(HeldNotice(int(delivery_id), phase, _cancellable(d, now)))
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
                    for fp, both in await _tuples(conn, q.SOURCES, (*pair, *pair)))
    storm_recent: dict[str, int] = {}
    if storm_window_s is not None:
        since = now - timedelta(seconds=storm_window_s)
        for audience in incident.decision.audiences:
            n = await _tuples(conn, q.STORM_RECENT, (audience, since, iid))
            storm_recent[audience] = int(n[0][0])
    return IncidentSnapshot(incident, alerts, logs, targets, sources, storm_recent)


async def commit_flush(
    conn: Conn, snapshot: IncidentSnapshot, result: FlushResult, now: datetime,
    deadline_s: float, insert: InsertDelivery, storm_window_s: float | None = None,
) -> list[NewDelivery] | None:
    """Apply ``result`` if still valid; return the deliveries inserted, None on conflict."""
    incident = snapshot.incident
    if result.cancel:
        states = {int(r["id"]): r for r in await _dicts(
            conn, q.DELIVERY_STATE_LOCKED, (list(result.cancel),))}
        if not all(_cancellable(states.get(i), now) for i in result.cancel):
            return None
    # The version guard is inside the UPDATE: 0 rows = the incident changed since the
    # snapshot (or another instance flushed it first), and nothing at all is written.
    cur = await conn.execute(q.FLUSH_INCIDENT, (
        result.state, result.resolved_at, result.due_at, now, result.first_notice_at,
        result.follow_ups, now, result.escalation_tier, bool(result.ack_notified),
        incident.id, incident.version))
    if cur.rowcount != 1:
        return None
    if result.cancel:
        async with conn.cursor() as c:
            await c.executemany(q.CANCEL_HELD, [(now, i) for i in result.cancel])
    if result.cancel_queued:
        cur = await conn.execute(q.CANCEL_QUEUED, (now, list(result.cancel_queued), now))
        if cur.rowcount != len(result.cancel_queued):  # the transaction rolls back
            raise ConflictError("a queued first notice was claimed while it was replaced")
    if result.cancel or result.cancel_queued:
        await _event(conn, incident.id, now, "notice_superseded",
                     {"deliveries": len(result.cancel) + len(result.cancel_queued)})
    inserted: list[NewDelivery] = []
    held_ids: dict[tuple[str, str], list[list[Any]]] = {}
    for notice in result.notices:
        new_id = await insert(conn, notice.delivery)
        if new_id is None:
            continue
        inserted.append(notice.delivery)
        if notice.held_until is not None and notice.delivery.failed_reason is None:
            await conn.execute(q.HOLD_DELIVERY, (
                notice.held_until, notice.held_until,
                notice.held_until + timedelta(seconds=deadline_s), new_id))
            held_ids.setdefault((notice.audience, notice.contact_id), []).append(
                [new_id, notice.delivery.phase])
    for log in result.logs:
        held = [[h.delivery_id, h.phase] for h in log.held]
        held.extend(held_ids.get((log.audience, log.contact_id), []))
        await conn.execute(q.UPSERT_RECIPIENT, (
            incident.id, log.audience, log.contact_id, _dumps(sorted(log.firing)),
            _dumps(sorted(log.resolved)), log.notified_at, log.seq,
            _dumps([list(c) for c in log.channels]), bool(log.announced), _dumps(held),
            log.asked_at, log.last_asked_at, log.answered_at, log.reminders))
    async with conn.cursor() as c:
        if result.alert_status:
            await c.executemany(q.SET_ALERT_STATUS, [
                (status, incident.id, fp) for fp, status in result.alert_status.items()])
        if result.inhibited:
            await c.executemany(q.SET_ALERT_INHIBITED, [
                (bool(flag), incident.id, fp) for fp, flag in result.inhibited.items()])
    for event in result.events:
        await _event(conn, incident.id, event.at, event.kind, event.detail)
    for audience in result.storm_counted:
        await conn.execute(q.COUNT_STORM_NOTICE, (audience, incident.id, now))
    if result.storm_folded and storm_window_s is not None:
        decision_json = decision_to_json(incident.decision)
        for audience in result.storm_folded:
            await _fold_into_storm(conn, audience, incident.id, now, storm_window_s,
                                   decision_json, incident.route_id)
        await _event(conn, incident.id, now, "storm", {"audiences": result.storm_folded})
    return inserted


async def _fold_into_storm(conn: Conn, audience: str, incident_id: str, now: datetime,
                           window_s: float, decision_json: str, route_id: str) -> None:
    """Record that ``incident_id``'s first notice for ``audience`` joins the open storm."""
    rows = await _tuples(conn, q.OPEN_STORM, (audience,))
    if rows:
        storm_id = int(rows[0][0])
    else:
        created = await _tuples(conn, q.INSERT_STORM, (
            audience, now, now + timedelta(seconds=window_s), route_id, decision_json))
        storm_id = int(created[0][0])
    await conn.execute(q.FOLD_STORM_NOTICE, (audience, incident_id, now, storm_id))


async def quarantine(conn: Conn, iid: str, now: datetime, reason: str, error: str,
                     base_s: float, cap_s: float) -> tuple[int, datetime] | None:
    """A flush of ``iid`` raised: push its timer out with exponential back-off."""
    rows = await _tuples(conn, q.QUARANTINE_READ, (iid,))
    if not rows:
        return None
    failures = int(rows[0][0]) + 1
    delay = min(cap_s, base_s * 2.0 ** min(failures - 1, 30))
    retry_at = now + timedelta(seconds=delay)
    await conn.execute(q.QUARANTINE, (retry_at, failures, error, now, iid))
    await _event(conn, iid, now, "flush_failed", {
        "reason": reason, "error": error, "failures": failures,
        "retry_at": retry_at.isoformat()})
    return failures, retry_at


async def list_intake(conn: Conn, *, status: str, limit: int,
                      offset: int) -> list[dict[str, Any]]:
    """Intake rows by status (``dead``), newest first; times as the SQLite store's text."""
    if status != "dead":
        raise ValueError(f"unknown intake status {status!r} (known: dead)")
    return [
        {"id": int(r["id"]), "source": r["source"], "received_at": ts(r["received_at"]),
         "fingerprint": r["fingerprint"], "dead_at": text_opt(r["dead_at"]),
         "dead_letter_reason": r["dead_letter_reason"], "alert": json.loads(r["alert"])}
        for r in await _dicts(conn, q.LIST_DEAD_INTAKE, (limit, offset))]


# --------------------------------------------------------------------------- API reads

_LEGACY_ROUTE_ID: Final = re.compile(r"root(?:/\d+)*")


async def upgrade_legacy(conn: Conn,
                         identity: Callable[[str, RouteDecision], str | None]) -> int:
    """Re-key the open incidents opened under a route position (``root/2``).

    Under an advisory lock: instances starting together re-key once (the next one waits,
    then finds the incidents already under their route ids)."""
    await conn.execute(q.ADVISORY_XACT_LOCK, (q.UPGRADE_LOCK_KEY,))
    done = 0
    for iid, route_id, labels_json, decision_json in await _tuples(conn, q.OPEN_INCIDENT_ROWS):
        if not _LEGACY_ROUTE_ID.fullmatch(route_id):
            continue
        decision = decision_from_json(decision_json)
        new_id = identity(route_id, decision)
        if new_id is None:
            continue
        key = group_key(new_id, json.loads(labels_json))
        if await _tuples(conn, q.OPEN_GROUP_EXISTS, (key,)):
            continue
        await conn.execute(q.REKEY_INCIDENT, (
            new_id, key, decision_to_json(replace(decision, route_id=new_id)), iid))
        done += 1
    return done


def _summary(row: Row) -> IncidentSummary:
    return IncidentSummary(
        id=row["id"], route_id=row["route_id"], state=row["state"], severity=row["severity"],
        audiences=json.loads(row["audiences"]), group_labels=json.loads(row["group_labels"]),
        opened_at=utc(row["opened_at"]), started_at=utc(row["started_at"]),
        updated_at=utc(row["updated_at"]), resolved_at=utc_opt(row["resolved_at"]),
        due_at=utc_opt(row["due_at"]), alerts_firing=int(row["firing"]),
        alerts_total=int(row["total"]), follow_ups=int(row["follow_ups"]),
        flush_failures=int(row["flush_failures"]), flush_error=row["flush_error"],
        ack=_ack_from_row(row), escalation_tier=int(row["escalation_tier"]))


async def list_incidents(conn: Conn, *, state: str | None, route: str | None,
                         audience: str | None, limit: int,
                         offset: int) -> list[IncidentSummary]:
    """Incidents, newest first, filtered by state, route id and audience."""
    return [_summary(r) for r in await _dicts(conn, q.LIST_INCIDENTS, {
        "state": state, "route": route, "audience": audience, "limit": limit,
        "offset": offset})]


_DELIVERY_TIMES: Final = ("created_at", "updated_at", "sent_at", "next_attempt_at",
                          "deferred_until")


async def get_incident(conn: Conn, iid: str) -> IncidentDetail | None:
    """One incident, its alerts, its timeline, its deliveries (newest last) and its
    notification log (by audience, then contact)."""
    rows = await _dicts(conn, q.INCIDENT_SUMMARY, (iid,))
    if not rows:
        return None
    alerts = [_alert_from_row(r) for r in await _dicts(conn, q.INCIDENT_ALERTS, (iid,))]
    events = [TimelineEvent(utc(r["at"]), r["kind"], json.loads(r["detail"]))
              for r in await _dicts(conn, q.INCIDENT_EVENTS, (iid,))]
    deliveries = [{k: text_opt(v) if k in _DELIVERY_TIMES else v for k, v in r.items()}
                  for r in await _dicts(conn, q.INCIDENT_DELIVERIES, (iid,))]
    recipients = [recipient_from_row(r)
                  for r in await _dicts(conn, q.INCIDENT_RECIPIENTS, (iid,))]
    return IncidentDetail(_summary(rows[0]), alerts, events, deliveries, recipients)


# --------------------------------------------------------------------------- storms


async def due_storms(conn: Conn, now: datetime) -> list[DueStorm]:
    """Storm summaries due at ``now`` with the incidents folded into them."""
    out: list[DueStorm] = []
    for row in await _dicts(conn, q.DUE_STORMS, (now,)):
        items = [_summary(r) for r in await _dicts(conn, q.STORM_INCIDENTS, (row["id"],))]
        out.append(DueStorm(int(row["id"]), row["audience"], row["decision"],
                            utc(row["opened_at"]), items))
    return out


async def commit_storm(conn: Conn, storm_id: int, notices: Sequence[PlannedNotice],
                       now: datetime, deadline_s: float,
                       insert: InsertDelivery) -> list[NewDelivery]:
    """Insert a storm summary's deliveries and mark the storm sent (once)."""
    rows = await _tuples(conn, q.STORM_SENT_AT, (storm_id,))
    if not rows or rows[0][0] is not None:
        return []
    inserted: list[NewDelivery] = []
    for notice in notices:
        new_id = await insert(conn, notice.delivery)
        if new_id is None:
            continue
        inserted.append(notice.delivery)
        if notice.held_until is not None:
            await conn.execute(q.HOLD_DELIVERY, (
                notice.held_until, notice.held_until,
                notice.held_until + timedelta(seconds=deadline_s), new_id))
    await conn.execute(q.MARK_STORM_SENT, (now, storm_id))
    return inserted
