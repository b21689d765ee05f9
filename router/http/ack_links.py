"""``GET|POST /ack/{token}``: acknowledge an incident from the link of a notice.

The token (:mod:`router.acks.tokens`) is the credential: one contact, one incident,
until it expires; no API token is asked. ``GET`` only shows a confirmation page with one
button (mail security scanners and link previews fetch every link: a GET never
acknowledges); the button ``POST``s to the same URL, which verifies the token again and
calls :meth:`router.acks.Acknowledger.acknowledge` with ``channel="link"`` and the
contact's name from the rules (its id when the rules no longer know it). The answer is
a page: acknowledged, already acknowledged by X at T, resolved, not found.

A malformed, forged or expired token is refused with a page naming why (400, 403, 410),
links off (no ``acks.link_key``) with a 404 page, no acknowledger with a 503 page.
Every page is HTML, not cached, not framed, sent with no referrer
(:mod:`router.http.ack_page`); every request is counted in
``tocsin_ack_link_requests_total{result}``. The token is never logged.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Final

from aiohttp import web

from router.acks import AckBy, AckResult, AckToken, TokenError, verify_token
from router.errors import StoreError
from router.http.ack_page import IncidentFacts, Page, page_response, text, when
from router.http.responses import Handler, json_errors
from router.http.state import ACK_LINKS, ACKNOWLEDGER, CLOCK, RULES, STORE
from router.logging import get_logger
from router.metrics import ACK_LINK_REQUESTS
from router.models import Contact
from router.rules import RuleSet
from router.store.base import IncidentDetail

__all__ = ["ACK_PATH", "add_ack_link_routes", "find_contact", "incident_title"]

ACK_PATH: Final = "/ack/{token}"
_MAX_TOKEN_CHARS: Final = 2048  # a real token is ~100 characters

_log = get_logger("router.http.ack")

#: HTTP status of each acknowledgement outcome on the result page.
_RESULT_STATUS: Final = {"acknowledged": 200, "already": 200, "resolved": 409,
                         "not_asked": 409, "not_found": 404}
_RESULT_TONE: Final = {"acknowledged": "ok", "already": "warn", "resolved": "ok",
                       "not_asked": "warn", "not_found": "err"}


def find_contact(rules: RuleSet | None, contact_id: str) -> Contact | None:
    """The contact ``contact_id`` of any audience of ``rules`` (None: unknown)."""
    if rules is None:
        return None
    for audience in rules.audiences.values():
        for contact in audience.contacts:
            if contact.id == contact_id:
                return contact
    return None


def incident_title(detail: IncidentDetail) -> str:
    """One line naming the incident: its alertname and other group labels."""
    labels = dict(detail.summary.group_labels)
    name = labels.pop("alertname", "")
    if not name and detail.alerts:
        name = detail.alerts[0].labels.get("alertname", "")
    rest = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if name and rest:
        return f"{name} ({rest})"
    return name or rest or detail.summary.id


def _browser_locale(request: web.Request) -> str | None:
    """The first language of ``Accept-Language`` (before the contact is known)."""
    first = request.headers.get("Accept-Language", "").split(",")[0]
    return first.split(";")[0].strip() or None


def _refused(locale: str | None, reason: str, status: int) -> web.Response:
    ACK_LINK_REQUESTS.labels(result=reason).inc()
    return page_response(Page(locale, text(locale, f"{reason}_title"),
                              text(locale, f"{reason}_body"), tone="err"), status)


def _verified(request: web.Request) -> AckToken | web.Response:
    """The token's grant, or the refusal page (links off, bad token)."""
    links = request.app.get(ACK_LINKS)
    if links is None:
        return _refused(_browser_locale(request), "disabled", 404)
    raw = request.match_info["token"]
    try:
        if len(raw) > _MAX_TOKEN_CHARS:
            raise TokenError("acknowledgement token too long")
        return verify_token(links.key, raw, request.app[CLOCK].now())
    except TokenError as exc:
        _log.info("acknowledgement link refused", reason=exc.reason)
        return _refused(_browser_locale(request), exc.reason, exc.status)


def _contact_facts(contact: Contact | None, grant: AckToken) -> tuple[str, str]:
    return (text(contact.locale if contact else None, "you"),
            contact.name if contact is not None else grant.contact_id)


async def handle_ack_page(request: web.Request) -> web.Response:
    """The confirmation page (never acknowledges: scanners follow links)."""
    grant = _verified(request)
    if isinstance(grant, web.Response):
        return grant
    contact = find_contact(request.app[RULES].current, grant.contact_id)
    locale = contact.locale if contact is not None else None
    tz = contact.timezone if contact is not None else None
    try:
        detail = await request.app[STORE].get_incident(grant.incident_id)
    except StoreError:
        _log.warning("acknowledgement page: the store did not answer",
                     incident_id=grant.incident_id)
        return _refused(locale, "unavailable", 503)
    if detail is None:
        ACK_LINK_REQUESTS.labels(result="not_found").inc()
        return page_response(Page(locale, text(locale, "not_found_title"),
                                  text(locale, "not_found_body"), tone="err"), 404)
    facts = IncidentFacts(title=incident_title(detail), severity=detail.summary.severity,
                          state=detail.summary.state, opened_at=detail.summary.opened_at)
    rows = ((text(locale, "incident"), facts.title),
            (text(locale, "severity"), facts.severity),
            (text(locale, "opened"), when(facts.opened_at, tz)),
            _contact_facts(contact, grant))
    ACK_LINK_REQUESTS.labels(result="shown").inc()
    if facts.state == "resolved":
        return page_response(Page(locale, text(locale, "resolved_title"),
                                  text(locale, "resolved_body"), tone="ok", facts=rows))
    return page_response(Page(locale, text(locale, "confirm_title"),
                              text(locale, "confirm_body"), facts=rows,
                              confirm=True))


def _result_page(result: AckResult, contact: Contact | None) -> web.Response:
    locale = contact.locale if contact is not None else None
    tz = contact.timezone if contact is not None else None
    by = result.acknowledged_by
    values: dict[str, str] = {}
    if result.status == "acknowledged":
        values["name"] = contact.name if contact is not None else (by.name if by else "")
    elif result.status == "already":
        values["name"] = by.name if by is not None else "?"
        values["at"] = (text(locale, "at", time=when(result.acknowledged_at, tz))
                        if result.acknowledged_at is not None else "")
    page = Page(locale, text(locale, f"{result.status}_title"),
                text(locale, f"{result.status}_body", **values),
                tone=_RESULT_TONE[result.status])
    return page_response(page, _RESULT_STATUS[result.status])


async def handle_ack_post(request: web.Request) -> web.Response:
    """Acknowledge the token's incident as its contact; answer the outcome page."""
    grant = _verified(request)
    if isinstance(grant, web.Response):
        return grant
    contact = find_contact(request.app[RULES].current, grant.contact_id)
    acknowledger = request.app.get(ACKNOWLEDGER)
    if acknowledger is None:
        return _refused(contact.locale if contact else None, "unavailable", 503)
    by = AckBy(name=contact.name if contact is not None else grant.contact_id,
               contact_id=grant.contact_id)
    try:
        result = await acknowledger.acknowledge(grant.incident_id, by=by, channel="link",
                                                at=request.app[CLOCK].now())
    except StoreError:
        _log.warning("acknowledgement by link: the store did not answer",
                     incident_id=grant.incident_id, contact_id=grant.contact_id)
        return _refused(contact.locale if contact else None, "unavailable", 503)
    ACK_LINK_REQUESTS.labels(result=result.status).inc()
    _log.info("acknowledgement by link", incident_id=grant.incident_id,
              contact_id=grant.contact_id, result=result.status)
    return _result_page(result, contact)


def _html_errors(handler: Handler) -> Handler:
    """Answer an unexpected error with the HTML "try again" page, logged without the URL
    (:func:`router.http.responses.internal_error` would log the path, token included)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (asyncio.CancelledError, web.HTTPException):
            raise
        except Exception:  # noqa: BLE001 — last resort: logged with traceback, answered 500
            _log.exception("acknowledgement link failed", method=request.method)
            return _refused(_browser_locale(request), "unavailable", 500)

    return guarded


def add_ack_link_routes(app: web.Application) -> None:
    """Register ``GET`` and ``POST /ack/{token}`` (the token is the credential)."""
    app.router.add_get(ACK_PATH, json_errors(_html_errors(handle_ack_page)))
    app.router.add_post(ACK_PATH, json_errors(_html_errors(handle_ack_post)))
