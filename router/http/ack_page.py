"""The HTML pages of an acknowledgement link: confirmation, outcome, refusal.

Self-contained (one inline style sheet allowed by its hash in the Content-Security-Policy,
no script, no external asset), every value escaped, worded in English or French after
the contact's locale. :func:`page_response` adds the headers every such page carries:
not cached, not framed, no referrer (the URL holds the token).
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

__all__ = ["PAGE_HEADERS", "IncidentFacts", "Page", "page_response", "text", "when"]

_STYLE: Final = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;"
    "background:#f4f5f7;color:#1d2330}"
    "main{max-width:32rem;margin:3rem auto;background:#fff;border-radius:10px;"
    "padding:1.5rem 2rem;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.3rem;margin:0 0 1rem}p{line-height:1.45}"
    "dl{display:grid;grid-template-columns:auto 1fr;gap:.35rem 1rem;margin:1rem 0}"
    "dt{color:#5b6475}dd{margin:0;overflow-wrap:anywhere}"
    "button{font-size:1.1rem;padding:.7rem 1.6rem;border:0;border-radius:6px;"
    "background:#c62828;color:#fff;cursor:pointer}"
    ".ok{color:#2e7d32}.warn{color:#b26a00}.err{color:#c62828}"
    ".sev{font-weight:600}footer{margin-top:1.5rem;font-size:.8rem;color:#8a93a5}"
)
_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

#: Headers of every acknowledgement page: the URL carries a token, so the page is never
#: cached, framed (clickjacking the button) or sent on as a Referer.
PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
}

_TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "confirm_title": "Acknowledge this incident?",
        "confirm_body": "Acknowledging tells the others you are on it and stops the "
                        "reminders and the escalation.",
        "button": "Acknowledge",
        "incident": "Incident", "severity": "Severity", "opened": "Opened",
        "you": "You", "state": "State",
        "acknowledged_title": "Acknowledged",
        "acknowledged_body": "Thank you, {name}: the incident is yours. The reminders "
                             "and the escalation are stopped.",
        "already_title": "Already acknowledged",
        "already_body": "{name} acknowledged this incident{at}.",
        "at": " at {time}",
        "resolved_title": "Incident resolved",
        "resolved_body": "This incident is resolved: there is nothing to acknowledge.",
        "not_asked_title": "No answer needed",
        "not_asked_body": "This incident does not ask for an acknowledgement.",
        "not_found_title": "Incident not found",
        "not_found_body": "This incident does not exist (any more).",
        "expired_title": "Link expired",
        "expired_body": "This acknowledgement link has expired. Acknowledge from a "
                        "newer notice, or with: tocsin incidents ack ID --by NAME",
        "forged_title": "Invalid link",
        "forged_body": "This acknowledgement link is not valid (its signature does "
                       "not match). Nothing was acknowledged.",
        "malformed_title": "Invalid link",
        "malformed_body": "This acknowledgement link is incomplete or damaged: open it "
                          "again from the notice. Nothing was acknowledged.",
        "disabled_title": "Acknowledgement links are off",
        "disabled_body": "This Tocsin has no acknowledgement link key configured "
                         "(acks.link_key), so it accepts no link.",
        "unavailable_title": "Try again shortly",
        "unavailable_body": "Tocsin cannot record acknowledgements right now. Nothing "
                            "was acknowledged; try again in a moment.",
        "open": "open", "resolved": "resolved",
        "footer": "Tocsin",
    },
    "fr": {
        "confirm_title": "Prendre en charge cet incident ?",
        "confirm_body": "Prendre en charge prévient les autres que vous vous en occupez "
                        "et arrête les relances et l'escalade.",
        "button": "Je prends",
        "incident": "Incident", "severity": "Gravité", "opened": "Ouvert",
        "you": "Vous", "state": "État",
        "acknowledged_title": "Pris en charge",
        "acknowledged_body": "Merci, {name} : l'incident est à vous. Les relances et "
                             "l'escalade sont arrêtées.",
        "already_title": "Déjà pris en charge",
        "already_body": "{name} a pris en charge cet incident{at}.",
        "at": " à {time}",
        "resolved_title": "Incident résolu",
        "resolved_body": "Cet incident est résolu : il n'y a rien à prendre en charge.",
        "not_asked_title": "Aucune réponse attendue",
        "not_asked_body": "Cet incident ne demande pas de prise en charge.",
        "not_found_title": "Incident introuvable",
        "not_found_body": "Cet incident n'existe pas (ou plus).",
        "expired_title": "Lien expiré",
        "expired_body": "Ce lien de prise en charge a expiré. Répondez depuis un avis "
                        "plus récent, ou avec : tocsin incidents ack ID --by NOM",
        "forged_title": "Lien invalide",
        "forged_body": "Ce lien de prise en charge n'est pas valide (sa signature ne "
                       "correspond pas). Rien n'a été pris en charge.",
        "malformed_title": "Lien invalide",
        "malformed_body": "Ce lien est incomplet ou abîmé : ouvrez-le de nouveau depuis "
                          "l'avis. Rien n'a été pris en charge.",
        "disabled_title": "Liens de prise en charge désactivés",
        "disabled_body": "Ce Tocsin n'a pas de clé de liens configurée (acks.link_key) : "
                         "il n'accepte aucun lien.",
        "unavailable_title": "Réessayez dans un instant",
        "unavailable_body": "Tocsin ne peut pas enregistrer de prise en charge pour le "
                            "moment. Rien n'a été pris en charge ; réessayez bientôt.",
        "open": "ouvert", "resolved": "résolu",
        "footer": "Tocsin",
    },
}


def _language(locale: str | None) -> str:
    lang = (locale or "en").split("-")[0].split("_")[0].lower()
    return lang if lang in _TEXT else "en"


def text(locale: str | None, key: str, **values: str) -> str:
    """The wording ``key`` in the language of ``locale`` (English by default)."""
    return _TEXT[_language(locale)][key].format(**values)


def when(at: datetime, timezone: str | None) -> str:
    """``2026-12-06 14:25 CET``: ``at`` in the contact's time zone (UTC when unknown)."""
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What the page shows of an incident (from the store; all optional)."""

    title: str
    severity: str
    state: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    """One page: a heading, a paragraph, facts, and an optional confirmation form."""

    locale: str | None
    heading: str
    body: str
    tone: str = ""  # "ok", "warn", "err" or "" (the heading's colour)
    facts: tuple[tuple[str, str], ...] = ()
    #: Show the confirmation button. The form has no ``action``: it POSTs to the page's
    #: own URL as the browser sees it (right behind a proxy that strips a path prefix).
    confirm: bool = False

    def render(self) -> str:
        """The whole HTML document, every value escaped."""
        esc = html.escape
        lang = _language(self.locale)
        facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in self.facts)
        form = ""
        if self.confirm:
            form = ('<form method="post">'
                    f'<button type="submit">{esc(text(lang, "button"))}</button></form>')
        tone = f' class="{esc(self.tone)}"' if self.tone else ""
        return (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="robots" content="noindex,nofollow">'
            f"<title>{esc(self.heading)} · Tocsin</title><style>{_STYLE}</style></head>"
            f"<body><main><h1{tone}>{esc(self.heading)}</h1><p>{esc(self.body)}</p>"
            f"{f'<dl>{facts}</dl>' if facts else ''}{form}"
            f"<footer>{esc(text(lang, 'footer'))}</footer></main></body></html>"
        )


def page_response(page: Page, status: int = 200) -> web.Response:
    """``page`` as a ``text/html`` response with :data:`PAGE_HEADERS`."""
    return web.Response(text=page.render(), status=status, content_type="text/html",
                        charset="utf-8", headers=PAGE_HEADERS)
