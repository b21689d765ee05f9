"""Message templates: sandboxed Jinja2, compiled at load, rendered per recipient.

Two sandboxed environments share the same filters: one for ``subject``/``text`` (no
escaping) and one for ``html`` (autoescape on). ``StrictUndefined`` makes any undefined
value an error. Templates may only use the documented top-level fields
(:data:`CONTEXT_FIELDS`); anything else is a load-time error.

Labels and annotations are mappings where a missing key reads as ``""`` (the same rule as
the matchers), so ``{{ alert.labels.instance }}`` never fails on an alert without that
label; typos in the top-level names do fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import structlog
from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from router.errors import TocsinError
from router.models import Alert, Contact, Phase, RenderedMessage, RouteDecision
from router.rules.problems import did_you_mean
from router.rules.sms_policy import TemplateSmsPolicy
from router.rules.template_fields import CONTEXT_ATTRIBUTES, unknown_attribute
from router.rules.view import IncidentView, StormItem, format_duration, single_alert_view

__all__ = [
    "CONTEXT_FIELDS",
    "CompiledMessage",
    "CompiledTemplate",
    "RenderError",
    "TemplateCompileError",
    "build_context",
    "compile_field",
    "format_date",
    "render_message",
]

_log = structlog.get_logger(__name__)

#: The top-level names a template may use.
CONTEXT_FIELDS: frozenset[str] = frozenset(
    {"alert", "severity", "phase", "route", "owner", "recipient", "meta", "incident", "storm"}
)


class RenderError(TocsinError):
    """A template failed at run time (e.g. an undefined attribute or a failing filter)."""


class TemplateCompileError(Exception):
    """A template source is invalid; ``lineno`` is 1-based within the template text."""

    def __init__(self, message: str, lineno: int) -> None:
        self.message = message
        self.lineno = lineno
        super().__init__(message)


class LabelMap(dict[str, str]):
    """A label (or annotation) mapping where a missing key reads as the empty string."""

    def __missing__(self, key: str) -> str:
        return ""


_MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"],
}


def _lang(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


def format_date(value: datetime, locale: str, tz: str, fmt: str | None = None) -> str:
    """Format an aware datetime in ``tz``; ``fmt`` is strftime, else a locale default.

    en: ``2 May 2024 14:03 UTC``; fr: ``2 mai 2024 à 16:03 (Europe/Paris)``.
    """
    if value.tzinfo is None:
        raise RenderError("the date filter needs a time-zone-aware datetime")
    try:
        local = value.astimezone(ZoneInfo(tz))
    except OverflowError:  # at the edge of the calendar (an untrusted time): shown in UTC
        local, tz = value.astimezone(UTC), "UTC"
    if fmt is not None:
        return local.strftime(fmt)
    lang = _lang(locale)
    month = _MONTHS.get(lang, _MONTHS["en"])[local.month - 1]
    hm = f"{local.hour:02d}:{local.minute:02d}"
    zone = "UTC" if tz in ("UTC", "Etc/UTC") else tz
    if lang == "fr":
        return f"{local.day} {month} {local.year} à {hm} ({zone})"
    return f"{local.day} {month} {local.year} {hm} {zone}"


@pass_context
def _date_filter(ctx: Context, value: Any, fmt: str | None = None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # an RFC 3339 annotation such as maintenance_start
        # Untrusted text (an annotation): what it cannot read as a time with an offset is
        # shown as written ("tomorrow 10:00") rather than failing the whole message.
        text = value
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            _log.warning("template.date_unreadable", value=text[:64])
            return text
        if value.tzinfo is None:
            _log.warning("template.date_without_offset", value=text[:64])
            return text
    if not isinstance(value, datetime):
        raise RenderError(f"the date filter expects a date, got {type(value).__name__}")
    recipient = ctx.get("recipient")
    locale = getattr(recipient, "locale", "en")
    tz = getattr(recipient, "timezone", "UTC")
    return format_date(value, locale, tz, fmt)


@pass_context
def _duration_filter(ctx: Context, value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, (int, float, timedelta)):
        raise RenderError(f"the duration filter expects seconds, got {type(value).__name__}")
    recipient = ctx.get("recipient")
    return format_duration(value, getattr(recipient, "locale", "en"))


def _make_env(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["date"] = _date_filter
    env.filters["duration"] = _duration_filter
    return env


_TEXT_ENV = _make_env(False)
_HTML_ENV = _make_env(True)


def compile_field(source: str, *, html: bool) -> jinja2.Template:
    """Compile one template field, checking syntax and the top-level names it uses."""
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateCompileError(f"template syntax error: {exc.message}", exc.lineno) from None
    unknown = sorted(find_undeclared_variables(tree) - CONTEXT_FIELDS)
    if unknown:
        name = unknown[0]
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), 1)
        allowed = ", ".join(sorted(CONTEXT_FIELDS))
        raise TemplateCompileError(
            f"template uses unknown field '{name}' (available: {allowed})", line)
    bad = unknown_attribute(tree)
    if bad is not None:
        obj, attr, line = bad
        kind = "alert" if obj not in CONTEXT_ATTRIBUTES else obj
        fields = ", ".join(sorted(CONTEXT_ATTRIBUTES[kind]))
        hint = did_you_mean(attr, CONTEXT_ATTRIBUTES[kind])
        raise TemplateCompileError(
            f"template uses unknown field '{obj}.{attr}'{hint} (fields of {obj}: {fields})",
            line)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter
        raise TemplateCompileError(f"template error: {exc.message}", exc.lineno) from None


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    """The compiled fields of one (template, channel, locale)."""

    subject: jinja2.Template | None
    text: jinja2.Template
    html: jinja2.Template | None


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A named template: channel → locale → compiled message, plus its fallback locale
    and its own SMS budget (``sms_policy``, None: the channel's default)."""

    name: str
    fallback_locale: str | None
    channels: Mapping[str, Mapping[str, CompiledMessage]]
    sms_policy: TemplateSmsPolicy | None = None

    def pick(self, channel: str, locale: str, default_locale: str) -> tuple[str, CompiledMessage]:
        """The message for ``channel`` in the best locale (exact, language, fallbacks)."""
        per_locale = self.channels.get(channel)
        if not per_locale:
            raise RenderError(f"template '{self.name}' has no messages for channel '{channel}'")
        candidates = [locale, _lang(locale)]
        if self.fallback_locale:
            candidates.append(self.fallback_locale)
        candidates.append(default_locale)
        for cand in candidates:
            if cand in per_locale:
                return cand, per_locale[cand]
        raise RenderError(
            f"template '{self.name}' has no '{channel}' message in locale '{locale}' "
            "nor in a fallback locale"
        )


@dataclass(frozen=True, slots=True)
class _AlertView:
    labels: LabelMap
    annotations: LabelMap
    status: str
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str


@dataclass(frozen=True, slots=True)
class _RouteView:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class _RecipientView:
    id: str
    name: str
    locale: str
    timezone: str


def build_context(decision: RouteDecision, alert: Alert, contact: Contact, phase: Phase,
                  meta: Mapping[str, str], locale: str, *,
                  incident: IncidentView | None = None,
                  storm: tuple[StormItem, ...] = ()) -> dict[str, Any]:
    """The documented template context (see docs/rules.md, "Template context").

    Without ``incident`` (rendering one alert outside the incident engine), the
    incident is the alert alone.
    """
    owner = decision.owner or alert.labels.get("owner") or alert.annotations.get(
        "owner") or alert.labels.get("responsible") or alert.annotations.get(
        "responsible") or ""
    return {
        "incident": incident if incident is not None else single_alert_view(alert, owner),
        "storm": list(storm),
        "alert": _AlertView(
            labels=LabelMap(alert.labels),
            annotations=LabelMap(alert.annotations),
            status=alert.status,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            fingerprint=alert.fingerprint,
            generator_url=alert.generator_url,
        ),
        "severity": decision.severity,
        "phase": phase,
        "route": _RouteView(id=decision.route_id, name=decision.route_name or decision.route_id),
        "owner": owner,
        "recipient": _RecipientView(id=contact.id, name=contact.name, locale=locale,
                                    timezone=contact.timezone),
        "meta": LabelMap(meta),
    }


def render_message(template: CompiledTemplate, message: CompiledMessage,
                   context: Mapping[str, Any]) -> RenderedMessage:
    """Render one compiled message; any failure becomes a RenderError."""
    try:
        subject = message.subject.render(context) if message.subject is not None else ""
        text = message.text.render(context)
        html = message.html.render(context) if message.html is not None else None
    except RenderError:
        raise
    except jinja2.TemplateError as exc:
        raise RenderError(f"template '{template.name}' failed: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as exc:
        raise RenderError(f"template '{template.name}' failed: {exc}") from None
    subject = " ".join(subject.split())
    return RenderedMessage(subject=subject, text=text.strip("\n") + "\n",
                           html=html.strip("\n") + "\n" if html is not None else None)
