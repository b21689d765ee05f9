"""``/api/v1/push/subscriptions``: register, list and delete Web Push subscriptions.

Every endpoint requires ``Authorization: Bearer <webpush.api_token>`` (the web app that
subscribes browsers holds the token, not the browsers' users) or an API token with scope
``operate`` (``read`` is enough to list); without a ``webpush`` section the endpoints
answer 404.

- ``POST`` body ``{"contact_id": "ops", "subscription": <PushSubscription.toJSON()>}``
  → 201 with the stored subscription (id, contact_id, masked endpoint). One browser
  may serve several contacts (a shared on-call laptop): registering its endpoint for a
  second contact adds a subscription (201) and leaves the first contact's in place;
  registering it again for the same contact replaces its keys (200).
- ``GET ?contact_id=ops`` → the list (endpoints shown as their origin only: the path is a
  bearer capability for sending to that browser).
- ``DELETE /api/v1/push/subscriptions/{id}`` → 204, or 404.

Contact ids are checked against the loaded rule set: an unknown contact is a 400. The
endpoint must be ``https`` on a public host unless ``webpush.allowed_endpoints`` lists it
(:mod:`router.push_endpoints`): otherwise a 400 says why.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from router.http.auth import API_AUTH, RouteScope
from router.http.responses import json_error, json_errors
from router.http.state import CLOCK, CONFIG, RULES, STORE
from router.push_endpoints import EndpointPolicy, EndpointRefused
from router.store.base import PushSubscription, SubscriptionError, parse_subscription

__all__ = ["add_push_routes", "subscription_to_json"]

_PATH = "/api/v1/push/subscriptions"


def subscription_to_json(sub: PushSubscription) -> dict[str, Any]:
    """A subscription as the API shows it (endpoint reduced to its origin)."""
    parts = urlsplit(sub.endpoint)
    return {"id": sub.id, "contact_id": sub.contact_id,
            "endpoint_origin": f"{parts.scheme}://{parts.netloc}",
            "created_at": sub.created_at.isoformat().replace("+00:00", "Z")}


def _denied(request: web.Request, scope: RouteScope = "push_operate") -> web.Response | None:
    webpush = request.app[CONFIG].webpush
    if webpush is None:
        return json_error(404, "Web Push is not configured (no 'webpush' section)")
    denied = request.app[API_AUTH].check(request.headers.get(hdrs.AUTHORIZATION), scope)
    return denied.response() if denied is not None else None


async def _endpoint_refused(request: web.Request, endpoint: str) -> web.Response | None:
    webpush = request.app[CONFIG].webpush
    assert webpush is not None  # checked by _denied
    policy = EndpointPolicy(webpush.allowed_endpoints)
    try:
        await policy.check(endpoint)
    except EndpointRefused as exc:
        return json_error(400, f"subscription.endpoint refused: {exc}",
                          location="subscription.endpoint")
    except (OSError, TimeoutError):
        host = urlsplit(endpoint).hostname
        return json_error(400, f"subscription.endpoint refused: its host {host} does not "
                          "resolve", location="subscription.endpoint")
    return None


def _known_contacts(request: web.Request) -> set[str] | None:
    rules = request.app[RULES].current
    if rules is None:
        return None
    return {c.id for audience in rules.audiences.values() for c in audience.contacts}


async def _create(request: web.Request) -> web.Response:
    denied = _denied(request)
    if denied is not None:
        return denied
    try:
        async with asyncio.timeout(request.app[CONFIG].webhook.body_timeout_s):
            raw = await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason="the request body was not received in time "
                                     "(webhook.body_timeout_s)") from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "the body must be JSON: {contact_id, subscription}")
    if not isinstance(body, dict):
        return json_error(400, "the body must be a JSON object: {contact_id, subscription}")
    contact_id = body.get("contact_id")
    if not isinstance(contact_id, str) or not contact_id:
        return json_error(400, "contact_id must be a non-empty string", location="contact_id")
    known = _known_contacts(request)
    if known is not None and contact_id not in known:
        return json_error(400, f"unknown contact_id {contact_id!r}: not in any audience of "
                          "the rule set", location="contact_id")
    try:
        endpoint, p256dh, auth = parse_subscription(body.get("subscription"))
    except SubscriptionError as exc:
        return json_error(400, str(exc), location="subscription")
    refused = await _endpoint_refused(request, endpoint)
    if refused is not None:
        return refused
    store = request.app[STORE]
    existed = any(s.endpoint == endpoint
                  for s in await store.push_subscriptions(contact_id))
    sub = await store.add_push_subscription(contact_id, endpoint, p256dh, auth,
                                            now=request.app[CLOCK].now())
    return web.json_response(subscription_to_json(sub), status=200 if existed else 201)


async def _list(request: web.Request) -> web.Response:
    denied = _denied(request, "push_read")
    if denied is not None:
        return denied
    contact_id = request.query.get("contact_id") or None
    subs = await request.app[STORE].push_subscriptions(contact_id)
    return web.json_response([subscription_to_json(s) for s in subs])


async def _delete(request: web.Request) -> web.Response:
    denied = _denied(request)
    if denied is not None:
        return denied
    raw = request.match_info["id"]
    if not raw.isdigit():
        return json_error(400, "the subscription id must be an integer", location="path.id")
    if not await request.app[STORE].delete_push_subscription(int(raw)):
        return json_error(404, f"no push subscription {raw}")
    return web.Response(status=204)


def add_push_routes(app: web.Application) -> None:
    """Register the subscription endpoints on ``app``."""
    app.router.add_post(_PATH, json_errors(_create))
    app.router.add_get(_PATH, json_errors(_list))
    app.router.add_delete(_PATH + "/{id}", json_errors(_delete))
