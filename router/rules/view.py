"""What templates see of an incident (``incident``, ``storm`` and ``ack`` in the template
context).

Built from an incident's alerts by :func:`incident_view`; when a template is rendered
outside an incident (storm summaries, the sample render of ``tocsin rules check``),
:func:`single_alert_view` makes a one-alert incident so every template renders. Rule
tests and ``--labels`` never use it: they render through the incident engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.models import Alert

__all__ = [
    "NOT_REQUESTED",
    "AckView",
    "AlertList",
    "AlertView",
    "IncidentView",
    "LabelDict",
    "StormItem",
    "alert_view",
    "eta_and_notes",
    "format_duration",
    "incident_view",
    "parse_eta",
    "read_eta",
    "single_alert_view",
]


#: ``incident.alerts`` lists at most this many alerts (the first by start, then
#: fingerprint); ``incident.total`` and ``incident.count`` still count them all, and
#: ``incident.firing`` / ``.resolved`` / ``.new`` stay complete. Like Alertmanager's
#: ``max_alerts``: the cost of rendering a notice no longer grows with the incident.
MAX_LISTED_ALERTS = 50


class LabelDict(dict[str, str]):
    """A label (or annotation) mapping where a missing key reads as the empty string."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert as templates see it (``alert`` and the items of ``incident.alerts``)."""

    labels: LabelDict
    annotations: LabelDict
    status: str
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str


class AlertList(list[AlertView]):
    """A list of alert views whose ``in`` test compares fingerprints, in O(1).

    Templates write ``{% if a in incident.new %}`` inside a loop over the incident's
    alerts; a plain list would compare every field of every item (quadratic in the
    incident's size). Within one view an alert is identified by its fingerprint.
    Read-only by convention (templates run in a sandbox).
    """

    __slots__ = ("_fingerprints",)

    def __init__(self, items: Iterable[AlertView] = ()) -> None:
        super().__init__(items)
        self._fingerprints = frozenset(v.fingerprint for v in self)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, AlertView) and item.fingerprint in self._fingerprints


@dataclass(frozen=True, slots=True)
class IncidentView:
    """The ``incident`` template field (see docs/rules.md, "Templates per phase")."""

    id: str
    state: str
    count: int
    total: int
    alerts: Sequence[AlertView]
    firing: Sequence[AlertView]
    resolved: Sequence[AlertView]
    new: Sequence[AlertView]
    instances: Sequence[str]
    group_labels: LabelDict
    common_labels: LabelDict
    common_annotations: LabelDict
    started_at: datetime
    resolved_at: datetime | None
    duration_s: int
    eta: datetime | None
    temporary_fix: bool
    follow_up: int = 0
    #: The announced end (``eta``) is past and the incident is still open: a notice
    #: must not present it as the new expected time.
    eta_passed: bool = False
    owner: str = ""
    #: Untrusted values the view ignored, each with why (e.g. an ``eta`` out of range).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AckView:
    """The ``ack`` template field: whether this notice asks for an answer, and the answer.

    The planner fills it (docs/rules.md "Acknowledgements"): ``requested`` when the
    route's ``ack:`` asks the recipient to answer this notice; ``code`` the incident's
    short code (``router.acks.codes.ack_code``), ``url`` the recipient's signed link
    (None when there is none: SMS, or no public URL configured); on the
    ``acknowledged`` notice, ``by`` (a name), ``at`` and ``channel`` (``sms``, ``link``,
    ``api``, ``cli``) say who answered; ``reminder`` numbers the re-sends (1, 2, ...),
    ``tier`` the escalation tier (1 for the first ``escalate`` entry).
    """

    requested: bool = False
    code: str = ""
    url: str | None = None
    by: str = ""
    at: datetime | None = None
    channel: str = ""
    reminder: int = 0
    tier: int = 0


#: The ``ack`` of a notice that asks for no answer (the default of every render).
NOT_REQUESTED = AckView()


@dataclass(frozen=True, slots=True)
class StormItem:
    """One incident listed in a ``storm`` summary."""

    id: str
    title: str
    count: int
    started_at: datetime
    state: str
    instances: Sequence[str] = field(default_factory=tuple)


def alert_view(alert: Alert) -> AlertView:
    """The template view of one alert."""
    return AlertView(labels=LabelDict(alert.labels), annotations=LabelDict(alert.annotations),
                     status=alert.status, starts_at=alert.starts_at, ends_at=alert.ends_at,
                     fingerprint=alert.fingerprint, generator_url=alert.generator_url)


def _common(maps: Iterable[Mapping[str, str]]) -> LabelDict:
    items = list(maps)
    if not items:
        return LabelDict()
    first = dict(items[0])
    for other in items[1:]:
        first = {k: v for k, v in first.items() if other.get(k) == v}
    return LabelDict(sorted(first.items()))


def _target(labels: Mapping[str, str]) -> str:
    return labels.get("instance") or labels.get("service") or labels.get("job") or ""


_TRUE = {"true", "yes", "1", "temporary"}


def _temporary(annotations: Iterable[Mapping[str, str]]) -> bool:
    for ann in annotations:
        if ann.get("fix", "").strip().lower() == "temporary":
            return True
        if ann.get("temporary_fix", "").strip().lower() in _TRUE:
            return True
    return False


#: An ``eta`` further than this from the incident's start is ignored (a typo such as
#: ``999999999d``, or a start time far in the future): follow-up arithmetic stays in range.
MAX_ETA = timedelta(days=366)


def read_eta(text: str, started_at: datetime) -> tuple[datetime | None, str | None]:
    """An ``eta`` annotation and, when it was given but ignored, why (never raises).

    RFC 3339 time, or an Alertmanager duration after the start; a value that is neither,
    or lies more than :data:`MAX_ETA` from the start (or outside the calendar), is
    ignored with a note.
    """
    value = text.strip()
    if not value:
        return None, None
    from router.rules.durations import parse_duration_s

    shown = value if len(value) <= 64 else value[:61] + "..."
    try:
        seconds = parse_duration_s(value)
    except ValueError:
        seconds = None
    try:
        if seconds is not None:
            if seconds > MAX_ETA.total_seconds():
                return None, f"eta {shown!r} ignored: more than {MAX_ETA.days} days"
            return started_at + timedelta(seconds=seconds), None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None, f"eta {shown!r} ignored: neither a duration nor an RFC 3339 time"
        if parsed.tzinfo is None:
            return None, f"eta {shown!r} ignored: a time needs an offset (Z or +02:00)"
        if abs(parsed - started_at) > MAX_ETA:
            return None, f"eta {shown!r} ignored: more than {MAX_ETA.days} days from the start"
        return parsed, None
    except (OverflowError, ValueError):  # outside the calendar (year 1 .. 9999)
        return None, f"eta {shown!r} ignored: out of range"


def parse_eta(text: str, started_at: datetime) -> datetime | None:
    """An ``eta`` annotation (see :func:`read_eta`); None when absent or ignored."""
    return read_eta(text, started_at)[0]


def incident_view(
    *,
    incident_id: str,
    state: str,
    alerts: Sequence[Alert],
    group_labels: Mapping[str, str],
    started_at: datetime,
    resolved_at: datetime | None,
    now: datetime,
    new: Iterable[str] = (),
    follow_up: int = 0,
    owner: str = "",
) -> IncidentView:
    """Build the view; ``alerts`` sorted by start then fingerprint for stable messages.

    ``incident.alerts`` holds the first :data:`MAX_LISTED_ALERTS` of them.
    """
    ordered = sorted(alerts, key=lambda a: (a.starts_at, a.fingerprint))
    views = [alert_view(a) for a in ordered]
    firing = [v for v in views if v.status == "firing"]
    resolved = [v for v in views if v.status == "resolved"]
    new_set = set(new)
    end = resolved_at if resolved_at is not None else now
    eta, notes = eta_and_notes(ordered, started_at)
    try:
        duration_s = max(0, int((end - started_at).total_seconds()))
    except OverflowError:  # pragma: no cover - aware datetimes subtract within range
        duration_s = 0
    return IncidentView(
        id=incident_id,
        state=state,
        count=len(firing),
        total=len(views),
        alerts=AlertList(views[:MAX_LISTED_ALERTS]),
        firing=AlertList(firing),
        resolved=AlertList(resolved),
        new=AlertList(v for v in views if v.fingerprint in new_set),
        instances=sorted({t for v in firing if (t := _target(v.labels))}),
        group_labels=LabelDict(sorted(group_labels.items())),
        common_labels=_common(a.labels for a in ordered),
        common_annotations=_common(a.annotations for a in ordered),
        started_at=started_at,
        resolved_at=resolved_at,
        duration_s=duration_s,
        eta=eta,
        temporary_fix=_temporary(a.annotations for a in ordered),
        follow_up=follow_up,
        eta_passed=eta is not None and resolved_at is None and _passed(eta, now),
        owner=owner,
        notes=notes,
    )


def _passed(eta: datetime, now: datetime) -> bool:
    try:
        return eta <= now
    except TypeError:  # pragma: no cover - the view only holds aware datetimes
        return False


def eta_and_notes(ordered: Sequence[Alert], started_at: datetime,
                  ) -> tuple[datetime | None, tuple[str, ...]]:
    """The incident's ``eta`` (the first of ``ordered`` that has a valid one) and the notes
    of the values ignored on the way, each once; ``ordered`` as :func:`incident_view`
    sorts them (start, then fingerprint)."""
    eta = None
    notes: list[str] = []
    for alert in ordered:
        eta, note = read_eta(alert.annotations.get("eta", ""), started_at)
        if note is not None and note not in notes:
            notes.append(note)
        if eta is not None:
            break
    return eta, tuple(notes)


def single_alert_view(alert: Alert, owner: str = "") -> IncidentView:
    """A one-alert incident (for rendering outside the incident engine)."""
    resolved_at = alert.ends_at if alert.status == "resolved" else None
    return incident_view(
        incident_id="inc-" + alert.fingerprint,
        state="resolved" if alert.status == "resolved" else "open",
        alerts=[alert], group_labels={}, started_at=alert.starts_at,
        resolved_at=resolved_at, now=resolved_at or alert.starts_at,
        new=[alert.fingerprint], owner=owner,
    )


_UNITS = {"en": ("d", "h", "min"), "fr": ("j", "h", "min")}


def format_duration(seconds: float | timedelta, locale: str = "en") -> str:
    """``1 h 38 min`` (en), ``1 h 38`` (fr), ``45 min``, ``2 d 3 h``; under a minute: ``0 min``."""
    raw = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
    total = max(0, int(raw)) if math.isfinite(raw) else 0  # inf/NaN from a template: 0
    lang = re.split(r"[-_]", locale)[0].lower()
    day_u, hour_u, min_u = _UNITS.get(lang, _UNITS["en"])
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} {day_u} {hours} {hour_u}" if hours else f"{days} {day_u}"
    if hours:
        if not minutes:
            return f"{hours} {hour_u}"
        if lang == "fr":
            return f"{hours} {hour_u} {minutes:02d}"
        return f"{hours} {hour_u} {minutes} {min_u}"
    return f"{minutes} {min_u}"
