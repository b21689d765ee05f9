"""``POST /api/v1/incidents/{id}/ack``: an operator acknowledges an incident (scope ``operate``).

Body: ``{"by": "NAME", "comment": "...", "channel": "api"|"cli"}``; ``by`` (who takes
it, as the others will be told) is required: the id of a contact of the rules (the
acknowledgement is then that contact's, under its name: in mode ``each`` it is their
answer) or any name; ``comment`` is optional (at most 500
characters, kept in the answer and the service log), ``channel`` defaults to ``api``
(``tocsin incidents ack`` sends ``cli``). The answer is the
:class:`router.acks.AckResult` as JSON::

    {"result": "acknowledged"|"already"|"resolved"|"not_asked"|"not_found",
     "incident_id": ..., "acknowledged_by": {"name": ..., "contact_id": ...} | null,
     "acknowledged_at": ISO-8601 | null, "ack_channel": ... | null, "message": ...}

with 200 for ``acknowledged`` and ``already`` (acknowledging twice is not an error: the
body says who did it first), 404 for ``not_found`` and 409 for ``resolved`` and
``not_asked`` (nothing to acknowledge: the request conflicts with the incident's state);
4xx answers also carry ``"status": "error"`` and ``"error"`` like every API error. A bad
body is a 400 with ``location``; no acknowledger configured, or the store not answering,
is a 503.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from aiohttp import web

from router.acks import AckBy, AckResult
from router.acks.contract import AckChannel
from router.errors import StoreError
from router.http.ack_links import find_contact
from router.http.auth import requires
from router.http.query import iso
from router.http.responses import json_error, json_errors
from router.http.state import ACKNOWLEDGER, CLOCK, CONFIG, RULES
from router.logging import get_logger

__all__ = ["add_ack_api_routes", "result_to_json"]

_MAX_BY_CHARS: Final = 200
_MAX_COMMENT_CHARS: Final = 500
_MAX_BODY_BYTES: Final = 16_384
_CHANNELS: Final[tuple[AckChannel, ...]] = ("api", "cli")
_STATUS: Final = {"acknowledged": 200, "already": 200, "not_found": 404, "resolved": 409,
                  "not_asked": 409}

_log = get_logger("router.http.ack")


def _message(result: AckResult) -> str:
    by = result.acknowledged_by
    at = f" at {iso(result.acknowledged_at)}" if result.acknowledged_at else ""
    return {
        "acknowledged": f"incident {result.incident_id} acknowledged",
        "already": f"incident {result.incident_id} was already acknowledged by "
                   f"{by.name if by else 'someone'}{at}",
        "resolved": f"incident {result.incident_id} is resolved: nothing to acknowledge",
        "not_asked": f"incident {result.incident_id} asks for no acknowledgement "
                     "(its route has no ack policy)",
        "not_found": f"no incident {result.incident_id!r}",
    }[result.status]


def result_to_json(result: AckResult) -> dict[str, Any]:
    """The JSON body of an acknowledgement outcome (see the module docstring)."""
    by = result.acknowledged_by
    body: dict[str, Any] = {
        "result": result.status, "incident_id": result.incident_id,
        "acknowledged_by": ({"name": by.name, "contact_id": by.contact_id}
                            if by is not None else None),
        "acknowledged_at": iso(result.acknowledged_at), "ack_channel": result.ack_channel,
        "message": _message(result),
    }
    if _STATUS[result.status] >= 400:
        body = {"status": "error", "error": body["message"], **body}
    return body


def _text_field(body: dict[str, Any], name: str, limit: int, *,
                required: bool) -> str | web.Response | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        return json_error(400, f"{name} must be a non-empty string"
                          + (" (who acknowledges: a name the others will see)"
                             if name == "by" else ""), location=f"body.{name}")
    if len(value) > limit:
        return json_error(400, f"{name} must be at most {limit} characters",
                          location=f"body.{name}")
    return value.strip()


async def _read_body(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_length is not None and request.content_length > _MAX_BODY_BYTES:
        return json_error(413, f"the body must be at most {_MAX_BODY_BYTES} bytes")
    try:
        async with asyncio.timeout(request.app[CONFIG].webhook.body_timeout_s):
            raw = await request.content.read(_MAX_BODY_BYTES + 1)
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason="the request body was not received in time "
                                     "(webhook.body_timeout_s)") from None
    if len(raw) > _MAX_BODY_BYTES:
        return json_error(413, f"the body must be at most {_MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, 'the body must be JSON: {"by": "NAME"}')
    if not isinstance(body, dict):
        return json_error(400, 'the body must be a JSON object: {"by": "NAME"}')
    unknown = sorted(set(body) - {"by", "comment", "channel"})
    if unknown:
        return json_error(400, f"unknown field {unknown[0]!r} (fields: by, comment, channel)",
                          location=f"body.{unknown[0]}")
    return body


async def handle_ack(request: web.Request) -> web.Response:
    """Acknowledge the incident as ``by``; answer the outcome."""
    incident_id = request.match_info["incident_id"]
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    by = _text_field(body, "by", _MAX_BY_CHARS, required=True)
    if isinstance(by, web.Response):
        return by
    comment = _text_field(body, "comment", _MAX_COMMENT_CHARS, required=False)
    if isinstance(comment, web.Response):
        return comment
    channel = body.get("channel", "api")
    if channel not in _CHANNELS:
        return json_error(400, f"channel must be one of {', '.join(_CHANNELS)}",
                          location="body.channel")
    acknowledger = request.app.get(ACKNOWLEDGER)
    if acknowledger is None:
        return json_error(503, "acknowledgements are not available on this service")
    assert by is not None  # required=True
    contact = find_contact(request.app[RULES].current, by)
    who = AckBy(name=contact.name, contact_id=contact.id) if contact else AckBy(name=by)
    try:
        result = await acknowledger.acknowledge(incident_id, by=who,
                                                channel=channel, at=request.app[CLOCK].now())
    except StoreError:
        _log.warning("acknowledgement by api: the store did not answer",
                     incident_id=incident_id)
        return json_error(503, "the state store did not answer: nothing was acknowledged, "
                          "try again", headers={"Retry-After": "5"})
    _log.info("acknowledgement by api", incident_id=incident_id, channel=channel,
              result=result.status, comment=comment)
    reply = result_to_json(result)
    if comment is not None:
        reply["comment"] = comment
    return web.json_response(reply, status=_STATUS[result.status])


def add_ack_api_routes(app: web.Application) -> None:
    """Register ``POST /api/v1/incidents/{incident_id}/ack`` (scope ``operate``)."""
    app.router.add_post("/api/v1/incidents/{incident_id}/ack",
                        json_errors(requires("operate", handle_ack)))
