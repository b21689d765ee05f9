"""Message templates: sandboxed Jinja2, compiled at load, rendered per recipient.

Two sandboxed environments share the same filters: one for ``subject``/``text`` (no
escaping) and one for ``html`` (autoescape on). ``StrictUndefined`` makes any undefined
value an error. Templates may only use the documented top-level fields
(:data:`CONTEXT_FIELDS`); anything else is a load-time error.

Labels and annotations are mappings where a missing key reads as ``""`` (the same rule as
the matchers), so ``{{ alert.labels.instance }}`` never fails on an alert without that
label; typos in the top-level names do fail.

Every render has a budget (:class:`RenderBudget`, ``templates.render_budget_s`` and
``templates.max_output_chars`` in the service file): the Jinja2 sandbox stops unsafe
attribute access, not runaway work, and a template runs on the service's own threads.
A render over its budget fails with :class:`RenderBudgetError` (a :class:`RenderError`)
naming the template and the budget it exceeded. How the budget is enforced:

- **time** — a deadline (``time.monotonic``) checked on every iteration of every
  ``{% for %}`` loop (the code generator wraps each loop's iterable), on every call made
  from a template (macros, recursive ``loop()``, methods) and on every chunk of output.
  These are the only constructs whose work is not bounded by the template's length: the
  rest of a template runs once per source node. Jinja2's own sandbox already caps
  ``range()`` at 100 000 items, so a single loop is short, nested loops are what runs
  away — each of their iterations is checked.
- **size** — the output is produced with ``Template.generate()`` and counted chunk by
  chunk, so an oversized render stops when it crosses ``max_output_chars`` instead of
  being assembled in memory first. Operations that build one big value in a single step
  are refused before they allocate: ``*`` on strings and lists and ``**`` on integers are
  intercepted (:meth:`_BudgetedEnvironment.call_binop`, which also keeps them out of
  compile-time constant folding), and integer arguments (widths, counts) larger than the
  output budget are refused in filters and string methods (``center``, ``indent``,
  ``format``, ``ljust`` ...).

The budget applies to the thread that renders (a thread-local meter), so renders may run
in worker threads (router/render_offload.py). A rendered subject is one line of at most
:data:`SUBJECT_MAX_CHARS` characters (an ellipsis marks the cut), whatever the channel:
an e-mail Subject (RFC 5322 lines stay under 998 bytes), a push title, an SMS prefix.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import babel
import babel.dates as babel_dates
import jinja2
import structlog
from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.meta import find_undeclared_variables
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from router.errors import RenderBudgetError, RenderError, TemplateCompileError
from router.models import (
    SUBJECT_MAX_CHARS,
    Alert,
    Contact,
    Phase,
    RenderedMessage,
    RouteDecision,
    one_line,
)
from router.rules.problems import did_you_mean
from router.rules.sms_policy import TemplateSmsPolicy
from router.rules.template_fields import (
    CONTEXT_ATTRIBUTES,
    per_recipient_reads,
    unknown_attribute,
)
from router.rules.view import (
    NOT_REQUESTED,
    AckView,
    IncidentView,
    StormItem,
    format_duration,
    single_alert_view,
)

__all__ = [
    "CONTEXT_FIELDS",
    "DATE_FORMATS",
    "CompiledMessage",
    "CompiledTemplate",
    "RenderBudget",
    "RenderBudgetError",
    "RenderError",
    "TemplateCompileError",
    "build_context",
    "compile_field",
    "format_date",
    "render_budget",
    "render_message",
    "render_within",
    "set_render_budget",
]

_log = structlog.get_logger(__name__)

#: A subject's output beyond which its generation stops (it is then cut to
#: SUBJECT_MAX_CHARS; the margin leaves room for whitespace that one_line() folds).
_SUBJECT_ENOUGH: Final = 8 * SUBJECT_MAX_CHARS

#: The top-level names a template may use.
CONTEXT_FIELDS: frozenset[str] = frozenset(
    {"alert", "severity", "phase", "route", "owner", "recipient", "meta", "incident", "storm",
     "ack"}
)


@dataclass(frozen=True, slots=True)
class RenderBudget:
    """What one render (all fields of one message) may spend.

    ``time_s``: wall-clock seconds; ``max_output_chars``: characters of each field's
    output, and the bound on any single value a template builds (``'x' * n``).
    """

    time_s: float = 1.0
    max_output_chars: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.time_s <= 0:
            raise ValueError("the render time budget must be > 0")
        if self.max_output_chars < 1:
            raise ValueError("the render output budget must be >= 1")


_budget = RenderBudget()


def render_budget() -> RenderBudget:
    """The budget every render gets (``templates`` in the service file)."""
    return _budget


def set_render_budget(budget: RenderBudget) -> None:
    """Set the budget of every later render (the service applies its config here)."""
    global _budget
    _budget = budget


class _Meter:
    """The running budget of one render in this thread."""

    __slots__ = ("budget", "deadline", "template")

    def __init__(self, template: str, budget: RenderBudget) -> None:
        self.template = template
        self.budget = budget
        self.deadline = time.monotonic() + budget.time_s

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetError(
                f"template '{self.template}' exceeded its {self.budget.time_s:g} s "
                "render budget")

    def too_big(self, what: str) -> RenderBudgetError:
        return RenderBudgetError(
            f"template '{self.template}' {what} over {self.budget.max_output_chars} "
            "characters (its output budget)")


_ACTIVE = threading.local()  # .meter: the _Meter of the render running in this thread


def _meter() -> _Meter | None:
    meter: _Meter | None = getattr(_ACTIVE, "meter", None)
    return meter


def _limit() -> int:
    meter = _meter()
    return (meter.budget if meter is not None else _budget).max_output_chars


def _refuse(what: str) -> RenderBudgetError:
    meter = _meter()
    if meter is not None:
        return meter.too_big(what)
    return RenderBudgetError(f"a template {what} over {_limit()} characters")


_DIGITS = re.compile(r"\d+")


def _check_args(args: Iterable[Any], limit: int) -> None:
    """Refuse integer arguments (widths, counts) larger than the output budget."""
    for arg in args:
        if type(arg) is int and arg > limit:
            raise _refuse(f"asked for a width or count of {arg},")


def _check_format(spec: Any, limit: int) -> None:
    """Refuse a format string whose widths or precisions exceed the output budget."""
    if isinstance(spec, str):
        for digits in _DIGITS.findall(spec):
            if len(digits) > 12 or int(digits) > limit:
                raise _refuse(f"asked for a format width of {digits},")


def _budgeted_filter(func: Callable[..., Any], *, formats: bool) -> Callable[..., Any]:
    """``func`` with its integer arguments (and format string) checked against the budget."""

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_context & co)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit = _limit()
        _check_args(args, limit)
        _check_args(kwargs.values(), limit)
        if formats:
            for arg in args:
                if isinstance(arg, str):
                    _check_format(arg, limit)
                    break
        return func(*args, **kwargs)

    return wrapper


class _BudgetedCodeGenerator(CodeGenerator):
    """Compiles ``{% for x in it %}`` as a loop over ``environment.budget_iter(it)``."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        wrapped = nodes.Call(nodes.EnvironmentAttribute("budget_iter"), [node.iter], [],
                             None, None, lineno=node.iter.lineno)
        loop = nodes.For(node.target, wrapped, node.body, node.else_, node.test,
                         node.recursive, lineno=node.lineno)
        if node.environment is not None:
            loop.set_environment(node.environment)
        super().visit_For(loop, frame)


class _BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox, metered: see the module docstring."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**"})

    def budget_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """``iterable``, checking the render's deadline before each item."""
        meter = _meter()
        if meter is None:
            yield from iterable
            return
        check = meter.check
        for item in iterable:
            check()
            yield item

    def call(__self, __context: Context, __obj: Any,
             *args: Any, **kwargs: Any) -> Any:
        """A call from a template: deadline checked, big widths refused, then the sandbox."""
        meter = _meter()
        if meter is not None:
            meter.check()
        if isinstance(getattr(__obj, "__self__", None), str):  # a str method
            limit = _limit()
            _check_args(args, limit)
            _check_args(kwargs.values(), limit)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` as the sandbox wraps them, widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__, _limit())
        return wrapped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*`` and ``**``, refused when their result would exceed the output budget."""
        limit = _limit()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (isinstance(seq, (str, list, tuple)) and isinstance(count, int)
                        and len(seq) * count > limit):
                    raise _refuse(f"built a value of {len(seq) * count} items,")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and abs(left) > 1 and right * abs(left).bit_length() > 8 * limit):
            raise _refuse(f"computed a number of about {right * abs(left).bit_length()} bits,")
        return super().call_binop(context, operator, left, right)


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


#: Named formats of the ``date`` filter, written per locale from the CLDR data (Babel):
#: the order of day and month, the hour cycle and the words follow the recipient's
#: locale (``en-US``: ``May 2, 2:03 PM``; ``en-GB``: ``2 May, 14:03``).
DATE_FORMATS: Final = ("time", "day", "day_time", "date", "date_time")


@functools.lru_cache(maxsize=256)
def _babel_locale(locale: str) -> babel.Locale:
    """The CLDR locale of ``locale`` (``en-US``, ``fr``), else its language, else ``en``."""
    for cand in (locale.replace("-", "_"), _lang(locale)):
        try:
            return babel.Locale.parse(cand)
        except (ValueError, babel.UnknownLocaleError):
            continue
    return babel.Locale.parse("en")


def _named(local: datetime, locale: str, fmt: str) -> str:
    loc = _babel_locale(locale)
    if fmt == "time":
        text = babel_dates.format_time(local, "short", tzinfo=local.tzinfo, locale=loc)
    elif fmt in ("day", "date"):
        text = babel_dates.format_skeleton("MMMd" if fmt == "day" else "yMMMd", local,
                                           tzinfo=local.tzinfo, locale=loc)
    else:  # day_time, date_time: the locale's own way of joining a date and a time
        day = babel_dates.format_skeleton("MMMd" if fmt == "day_time" else "yMMMd", local,
                                          tzinfo=local.tzinfo, locale=loc)
        hour = babel_dates.format_time(local, "short", tzinfo=local.tzinfo, locale=loc)
        pattern = str(babel_dates.get_datetime_format("short", locale=loc))
        text = pattern.replace("{1}", day).replace("{0}", hour)
    # CLDR puts narrow no-break spaces before AM/PM: not in GSM-7 (an SMS would turn
    # UCS-2 and cost twice the parts), and plain spaces read the same.
    return text.replace("\u202f", " ").replace("\u00a0", " ")


@functools.lru_cache(maxsize=4096)
def format_date(value: datetime, locale: str, tz: str, fmt: str | None = None) -> str:
    """Format an aware datetime in ``tz``; ``fmt`` is strftime (``%H:%M``), one of
    :data:`DATE_FORMATS` (per-locale CLDR formats), else the locale default.

    Default, en: ``2 May 2024 14:03 UTC``; fr: ``2 mai 2024 à 16:03 (Europe/Paris)``.
    Cached: a fan-out formats the same instants for thousands of recipients.
    """
    if value.tzinfo is None:
        raise RenderError("the date filter needs a time-zone-aware datetime")
    try:
        local = value.astimezone(ZoneInfo(tz))
    except OverflowError:  # at the edge of the calendar (an untrusted time): shown in UTC
        local, tz = value.astimezone(UTC), "UTC"
    if fmt is not None:
        if fmt in DATE_FORMATS:
            return _named(local, locale, fmt)
        if "%" not in fmt:
            raise RenderError(f"unknown date format {fmt!r}: give a strftime format "
                              f"(%H:%M) or one of {', '.join(DATE_FORMATS)}")
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
    # The contact's own locale when the message is in its language (en-US, en-GB).
    locale = getattr(recipient, "format_locale", None) or getattr(recipient, "locale", "en")
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
    env = _BudgetedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["date"] = _date_filter
    env.filters["duration"] = _duration_filter
    for name, func in list(env.filters.items()):
        env.filters[name] = _budgeted_filter(func, formats=name == "format")
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


def recipient_reads(*sources: str | None) -> frozenset[str] | None:
    """What of one recipient the output of these template fields depends on
    (:func:`router.rules.template_fields.per_recipient_reads`; None: never cached)."""
    reads: set[str] = set()
    for source in sources:
        if source is None:
            continue
        try:
            tree = _TEXT_ENV.parse(source)
        except jinja2.TemplateSyntaxError:
            return None
        found = per_recipient_reads(tree)
        if found is None:
            return None
        reads.update(found)
    return frozenset(reads)


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    """The compiled fields of one (template, channel, locale); ``reads``: what of a
    recipient its output depends on (:func:`recipient_reads`; None: every render is its
    own, as for a message built without it)."""

    subject: jinja2.Template | None
    text: jinja2.Template
    html: jinja2.Template | None
    reads: frozenset[str] | None = None


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
    #: The extra columns of the contact's source (``recipient.attributes.plan``; a
    #: missing one reads as ""), and its tags.
    attributes: LabelMap
    tags: tuple[str, ...]
    # The locale dates are written in: the contact's own (en-US) when the message is in
    # its language, else the message's.
    format_locale: str = ""


def _format_locale(contact_locale: str, message_locale: str) -> str:
    return contact_locale if _lang(contact_locale) == _lang(message_locale) else message_locale


def build_context(decision: RouteDecision, alert: Alert, contact: Contact, phase: Phase,
                  meta: Mapping[str, str], locale: str, *,
                  incident: IncidentView | None = None,
                  storm: tuple[StormItem, ...] = (),
                  ack: AckView = NOT_REQUESTED) -> dict[str, Any]:
    """The documented template context (see docs/rules.md, "Template context").

    Without ``incident`` (rendering one alert outside the incident engine), the
    incident is the alert alone. ``ack`` is what the notice asks of its recipient
    (default: no answer asked).
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
                                    timezone=contact.timezone,
                                    attributes=LabelMap(contact.attributes),
                                    tags=contact.tags,
                                    format_locale=_format_locale(contact.locale, locale)),
        "meta": LabelMap(meta),
        "ack": ack,
    }


def render_message(template: CompiledTemplate, message: CompiledMessage,
                   context: Mapping[str, Any]) -> RenderedMessage:
    """Render one compiled message within the render budget; any failure is a RenderError.

    The subject becomes one line of at most :data:`SUBJECT_MAX_CHARS` characters.
    """
    return render_within(template, message, context, _budget)


def render_within(template: CompiledTemplate, message: CompiledMessage,
                   context: Mapping[str, Any], budget: RenderBudget) -> RenderedMessage:
    """Render ``message`` of ``template`` with ``context`` under ``budget``."""
    meter = _Meter(template.name, budget)
    outer = _meter()
    _ACTIVE.meter = meter
    try:
        subject = (_generate(message.subject, context, meter, enough=_SUBJECT_ENOUGH)
                   if message.subject else "")
        text = _generate(message.text, context, meter)
        html = _generate(message.html, context, meter) if message.html is not None else None
    except RenderError:
        raise
    except jinja2.TemplateError as exc:
        raise RenderError(f"template '{template.name}' failed: {exc}") from None
    except RecursionError:
        raise RenderError(f"template '{template.name}' failed: calls nested too deep"
                          ) from None
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as exc:
        raise RenderError(f"template '{template.name}' failed: {exc}") from None
    finally:
        _ACTIVE.meter = outer
    return RenderedMessage(subject=one_line(subject), text=text.strip("\n") + "\n",
                           html=html.strip("\n") + "\n" if html is not None else None)




def _generate(field: jinja2.Template, context: Mapping[str, Any], meter: _Meter, *,
              enough: int | None = None) -> str:
    """One field's output, streamed and counted against the budget.

    With ``enough`` (the subject), generation stops once that many characters are out:
    the rest would be cut anyway, so a long subject is cut rather than a failure.
    """
    limit = meter.budget.max_output_chars
    size = 0
    chunks: list[str] = []
    stream = field.generate(context)
    try:
        for chunk in stream:
            size += len(chunk)
            if enough is not None and size >= enough:
                chunks.append(chunk[: max(0, enough - size + len(chunk))])
                break
            if size > limit:
                raise meter.too_big("rendered output")
            meter.check()
            chunks.append(chunk)
    finally:
        close = getattr(stream, "close", None)  # a generator: stop it where it is
        if close is not None:
            close()
    return "".join(chunks)


