"""``GET /api/v1/incidents`` and ``GET /api/v1/incidents/{id}``: incidents and timelines.

List query: ``state`` (open|resolved), ``route`` (route id), ``audience``, ``limit``
(1..1000, default 100), ``offset``. The detail adds the alerts (joined, resolved,
inhibited), the timeline (opened, alerts joined/resolved, duplicates with their sender,
notices planned/deferred, follow-ups, resolution) and the notifications (phase, channel,
masked recipient, status pending/sent/failed/cancelled, deferral, times) — the basis of
the post-mortem. Recipients and addresses in errors are masked.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from router.http.auth import requires
from router.http.query import BadQuery, int_param, iso
from router.http.responses import json_error, json_errors
from router.http.state import STORE
from router.logging import mask_text
from router.masking import mask_address
from router.store.base import IncidentSummary, Store

__all__ = ["add_incident_routes", "summary_to_json"]

_STATES: Final = ("open", "resolved")
_MAX_LIMIT: Final = 1000



def _iso_text(value: str | None) -> str | None:
    return value.replace("+00:00", "Z") if value else None


def summary_to_json(item: IncidentSummary) -> dict[str, Any]:
    """One incident as the list shows it."""
    return {
        "id": item.id, "state": item.state, "route_id": item.route_id,
        "severity": item.severity, "audiences": item.audiences,
        "group_labels": item.group_labels, "alerts_firing": item.alerts_firing,
        "alerts_total": item.alerts_total, "opened_at": iso(item.opened_at),
        "started_at": iso(item.started_at), "updated_at": iso(item.updated_at),
        "resolved_at": iso(item.resolved_at), "next_timer_at": iso(item.due_at),
        "follow_ups": item.follow_ups,
        # Quarantined while > 0: the last flushes raised (retried with back-off).
        "flush_failures": item.flush_failures,
        "flush_error": mask_text(item.flush_error) if item.flush_error else None,
        # Acknowledgement (routes with `ack:`): who took it, when and how.
        "acknowledged_at": iso(item.ack.at) if item.ack else None,
        "acknowledged_by": ({"contact_id": item.ack.by_id, "name": item.ack.by_name}
                            if item.ack else None),
        "ack_channel": item.ack.channel if item.ack else None,
        "escalation_tier": item.escalation_tier,
    }




def _store(request: web.Request) -> Store:
    return request.app[STORE]


async def handle_incidents(request: web.Request) -> web.Response:
    """List incidents, newest first, filtered by state, route and audience."""
    try:
        state = request.query.get("state") or None
        if state is not None and state not in _STATES:
            raise BadQuery("state", f"must be one of {', '.join(_STATES)}, got {state!r}")
        limit = int_param(request, "limit", 100, 1, _MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 2**62)
    except BadQuery as exc:
        return json_error(400, str(exc), location=exc.location)
    rows = await _store(request).list_incidents(
        state=state, route=request.query.get("route") or None,
        audience=request.query.get("audience") or None, limit=limit, offset=offset)
    return web.json_response([summary_to_json(row) for row in rows])


async def handle_incident(request: web.Request) -> web.Response:
    """One incident with its alerts, timeline and notifications."""
    incident_id = request.match_info["incident_id"]
    detail = await _store(request).get_incident(incident_id)
    if detail is None:
        return json_error(404, f"no incident {incident_id!r}")
    body = summary_to_json(detail.summary)
    body["alerts"] = [
        {"fingerprint": a.fingerprint, "labels": dict(a.labels), "status": a.status,
         "inhibited": a.inhibited, "starts_at": iso(a.starts_at), "ends_at": iso(a.ends_at),
         "first_seen_at": iso(a.first_seen_at), "last_seen_at": iso(a.last_seen_at),
         "sender": a.sender}
        for a in detail.alerts]
    body["recipients"] = [
        {"audience": r.audience, "contact_id": r.contact_id,
         "channels": [channel for channel, _address, _locale in r.channels],
         "notified_at": iso(r.notified_at), "asked": r.asked_at is not None,
         "asked_at": iso(r.asked_at), "answered": r.answered_at is not None,
         "answered_at": iso(r.answered_at), "reminders": r.reminders}
        for r in detail.recipients]
    body["timeline"] = [{"at": iso(e.at), "event": e.kind, **dict(e.detail)}
                        for e in detail.events]
    body["notifications"] = [
        {"id": d["id"], "phase": d["phase"], "channel": d["channel"],
         "recipient": mask_address(d["recipient"]), "audience": d["audience"],
         "status": d["status"], "attempts": d["attempts"],
         "planned_at": _iso_text(d["created_at"]), "updated_at": _iso_text(d["updated_at"]),
         "sent_at": _iso_text(d["sent_at"]), "deferred_until": _iso_text(d["deferred_until"]),
         "next_attempt_at": _iso_text(d["next_attempt_at"]),
         "last_error": mask_text(d["last_error"]) if d["last_error"] else None}
        for d in detail.deliveries]
    return web.json_response(body)


def add_incident_routes(app: web.Application) -> None:
    """Register the incident endpoints (scope ``read``)."""
    app.router.add_get("/api/v1/incidents", json_errors(requires("read", handle_incidents)))
    app.router.add_get("/api/v1/incidents/{incident_id}",
                       json_errors(requires("read", handle_incident)))
