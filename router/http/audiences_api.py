"""``GET /api/v1/audiences`` and ``GET /api/v1/audiences/{name}``: who the rules in force
can reach (scope ``read``).

The list: per audience its description, members, contacts reachable per channel
(:func:`router.audiences.channel_counts`: has the channel's address), those reachable on
no channel, its contact sources (each load: file, time, rows, valid, invalid,
duplicates, reachable per channel, problems — at most :data:`LIST_PROBLEMS` of them
here) and when the rule set in force was loaded. The detail adds every problem (up to
:data:`MAX_PROBLEMS`) and the members, masked (:func:`router.audiences.masked_member`:
e-mail and phone masked, the name as initials), in file order, paginated like
``/api/v1/deliveries``: ``limit`` (1..1000, default 100), ``offset`` (>= 0), and
``channel`` (email|sms|topic: only the members reachable on it, ``none``: those reachable
on none). An unknown audience is a JSON 404; before any rule set is loaded, 503.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from router.audiences import (
    ADDRESS_CHANNELS,
    channel_counts,
    masked_member,
    unreachable_count,
)
from router.http.auth import requires
from router.http.query import BadQuery, int_param, iso
from router.http.responses import json_error, json_errors
from router.http.state import RULES
from router.rules.ruleset import Audience, ContactSourceReport

__all__ = ["LIST_PROBLEMS", "MAX_PROBLEMS", "add_audience_routes", "audience_to_json"]

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
#: Problems listed per source in the list (the detail lists up to MAX_PROBLEMS).
LIST_PROBLEMS: Final = 10
MAX_PROBLEMS: Final = 1000
#: The Contact field holding each channel's address (the ``channel`` filter).
_ADDRESS_FIELD: Final = {"email": "email", "sms": "phone", "topic": "topic"}


def _source_to_json(source: ContactSourceReport, max_problems: int) -> dict[str, Any]:
    return {
        "path": source.path, "loaded_at": iso(source.loaded_at), "rows": source.rows,
        "valid": source.valid, "invalid": source.invalid, "duplicates": source.duplicates,
        "reachable": dict(source.reachable),
        "problems_total": len(source.problems),
        # Loader texts are "file:line: column: why" with personal data already masked.
        "problems": list(source.problems[:max_problems]),
    }


def audience_to_json(audience: Audience, *, max_problems: int = LIST_PROBLEMS) -> dict[str, Any]:
    """One audience as the list shows it (no member)."""
    return {
        "name": audience.name,
        "description": audience.description,
        "members": len(audience.contacts),
        "reachable": channel_counts(audience.contacts),
        "unreachable": unreachable_count(audience.contacts),
        "sources": [_source_to_json(s, max_problems) for s in audience.sources],
    }


async def handle_audiences(request: web.Request) -> web.Response:
    """Every audience of the rules in force, by name."""
    ref = request.app[RULES]
    rules = ref.current
    if rules is None:
        return json_error(503, "no rule set loaded")
    return web.json_response({
        "rules_loaded_at": iso(ref.loaded_at),
        "audiences": [audience_to_json(rules.audiences[name])
                      for name in sorted(rules.audiences)],
    })


async def handle_audience(request: web.Request) -> web.Response:
    """One audience with its members, masked and paginated."""
    ref = request.app[RULES]
    rules = ref.current
    if rules is None:
        return json_error(503, "no rule set loaded")
    name = request.match_info["name"]
    audience = rules.audiences.get(name)
    if audience is None:
        return json_error(404, f"no audience {name!r}")
    try:
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, 2**62)
        channel = request.query.get("channel") or None
        choices = (*ADDRESS_CHANNELS, "none")
        if channel is not None and channel not in choices:
            raise BadQuery("channel", f"must be one of {', '.join(choices)}, got {channel!r}")
    except BadQuery as exc:
        return json_error(400, str(exc), location=exc.location)
    members = audience.contacts
    if channel == "none":
        members = tuple(c for c in members if not (c.email or c.phone or c.topic))
    elif channel is not None:
        field = _ADDRESS_FIELD[channel]
        members = tuple(c for c in members if getattr(c, field))
    body = audience_to_json(audience, max_problems=MAX_PROBLEMS)
    body["rules_loaded_at"] = iso(ref.loaded_at)
    body["page"] = {"limit": limit, "offset": offset, "channel": channel,
                    "total": len(members)}
    body["contacts"] = [masked_member(c) for c in members[offset:offset + limit]]
    return web.json_response(body)


def add_audience_routes(app: web.Application) -> None:
    """Register the audience endpoints (scope ``read``)."""
    app.router.add_get("/api/v1/audiences", json_errors(requires("read", handle_audiences)))
    app.router.add_get("/api/v1/audiences/{name}",
                       json_errors(requires("read", handle_audience)))
