"""``GET /api/v1/deliveries``: the notification history, recipients masked; and
``GET /api/v1/intake?status=dead``: intake rows set aside because routing them raised.

Query: ``status`` (pending|sent|failed|cancelled, optional), ``incident`` (an incident
id), ``phase`` (firing, update, follow_up, resolved, summary, storm, reminder,
escalation, acknowledged, reply), ``limit`` (1..1000, default 100), ``offset`` (>= 0,
default 0). Answer: a JSON list, newest first. Message bodies are not
exposed (they may carry personal data); recipients go through :func:`mask_address`, and
addresses inside ``last_error`` are masked too.
"""

from __future__ import annotations

from typing import Any, Final, get_args

from aiohttp import web

from router.http.query import BadQuery, int_param, iso
from router.http.responses import json_error
from router.http.state import STORE
from router.logging import mask_text
from router.masking import mask_address
from router.models import Delivery, Phase

__all__ = ["MAX_LIMIT", "delivery_to_json", "handle_deliveries", "handle_intake"]

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
_STATUSES: Final = ("pending", "sent", "failed", "cancelled")
_PHASES: Final = get_args(Phase)



def delivery_to_json(delivery: Delivery) -> dict[str, Any]:
    """One outbox row as the API shows it (recipient masked, no message body)."""
    return {
        "id": delivery.id,
        "incident_key": delivery.incident_key,
        "fingerprint": delivery.fingerprint,
        "route_id": delivery.route_id,
        "phase": delivery.phase,
        "channel": delivery.channel,
        "recipient": mask_address(delivery.recipient),
        "audience": delivery.audience,
        "severity": delivery.severity,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
        "sent_at": iso(delivery.sent_at),
        "next_attempt_at": iso(delivery.next_attempt_at),
        # Provider errors often echo the address ("550 <bob@example.org>: no such user").
        "last_error": mask_text(delivery.last_error) if delivery.last_error else None,
        # A failed delivery is a dead letter: never retried unless replayed
        # (`tocsin deliveries retry`); the reason says why it stopped.
        "dead_letter": delivery.status == "failed",
        "dead_letter_reason": (delivery.dead_letter_reason or "permanent")
        if delivery.status == "failed" else None,
        "segments": delivery.segments,
        "fallback_of": delivery.fallback_of,
    }




async def handle_deliveries(request: web.Request) -> web.Response:
    """List deliveries, newest first, optionally filtered by status, incident and phase."""
    try:
        status = request.query.get("status") or None
        if status is not None and status not in _STATUSES:
            raise BadQuery("status", f"must be one of {', '.join(_STATUSES)}, got {status!r}")
        phase = request.query.get("phase") or None
        if phase is not None and phase not in _PHASES:
            raise BadQuery("phase", f"must be one of {', '.join(_PHASES)}, got {phase!r}")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 2**62)
    except BadQuery as exc:
        return json_error(400, str(exc), location=exc.location)
    rows = await request.app[STORE].list_deliveries(
        status=status, limit=limit, offset=offset,
        incident=request.query.get("incident") or None, phase=phase)
    return web.json_response([delivery_to_json(row) for row in rows])


def _masked(values: object) -> dict[str, str]:
    if not isinstance(values, dict):
        return {}
    return {str(k): mask_text(str(v)) for k, v in values.items()}


async def handle_intake(request: web.Request) -> web.Response:
    """Dead-lettered intake rows (``status=dead``, the default), newest first.

    Each row: ``id``, ``source``, ``received_at``, ``fingerprint``, ``dead_at``,
    ``dead_letter_reason`` and the alert's ``labels``, ``annotations``, ``status``,
    ``starts_at`` (addresses in values masked). Replay with ``tocsin intake retry``.
    """
    try:
        status = request.query.get("status") or "dead"
        if status != "dead":
            raise BadQuery("status", f"must be dead, got {status!r}")
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 2**62)
    except BadQuery as exc:
        return json_error(400, str(exc), location=exc.location)
    rows = await request.app[STORE].list_intake(status=status, limit=limit, offset=offset)
    out = []
    for row in rows:
        alert = row.get("alert")
        alert = alert if isinstance(alert, dict) else {}
        reason = row.get("dead_letter_reason")
        out.append({
            "id": row["id"], "source": row["source"], "received_at": row["received_at"],
            "fingerprint": row["fingerprint"], "dead_at": row["dead_at"],
            "dead_letter_reason": mask_text(str(reason)) if reason is not None else None,
            "labels": _masked(alert.get("labels")),
            "annotations": _masked(alert.get("annotations")),
            "status": alert.get("status"), "starts_at": alert.get("starts_at"),
        })
    return web.json_response(out)
