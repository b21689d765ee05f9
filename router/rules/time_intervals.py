"""Named time intervals with Alertmanager's semantics, and their pure membership test.

A named interval is a list of specs; an instant belongs to the interval when it belongs
to any spec. A spec holds when every field it sets holds (an absent field matches
anything), evaluated in the spec's ``location`` (IANA, default UTC) — or, for quiet
hours, in the recipient's own time zone:

- ``times``: ``[{start_time: "HH:MM", end_time: "HH:MM"}]``, start inclusive, end
  exclusive, ``24:00`` allowed as an end. Alertmanager requires start < end; quiet hours
  (``allow_overnight``) also accept ``22:00``–``08:00``: such a window belongs to the day
  it *starts* on (Friday 22:00 → Saturday 08:00 is a Friday window).
- ``weekdays``: ``monday`` … ``sunday`` or ranges ``monday:friday`` (any case).
- ``days_of_month``: ``1`` … ``31`` and ``-1`` (last day) … ``-31``, ranges ``1:5``,
  ``-3:-1``, ``-7:-1``; clamped to the month like Alertmanager.
- ``months``: ``january`` … ``december`` or ``1`` … ``12``, ranges ``january:march``.
- ``years``: ``2024`` or ranges ``2024:2026``.

Everything here is pure: membership is a function of the instant (and a zone).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from router.checks import check_timezone
from router.strict import Strict

__all__ = [
    "IntervalSpec",
    "TimeInterval",
    "TimeIntervalSpecModel",
    "TimeRange",
    "TimeRangeModel",
    "check_timezone",
    "compile_interval",
    "compile_spec",
    "window_end",
]

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def _minutes(text: str, *, end: bool) -> int:
    match = _HHMM.match(text.strip())
    if match is None:
        raise ValueError(f"invalid time '{text}': expected HH:MM such as 08:00 or 22:30")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"invalid time '{text}': 00:00 to 23:59"
                         + (" (or 24:00 as an end)" if end else ""))
    return hours * 60 + minutes


class TimeRangeModel(Strict):
    """``{start_time: "HH:MM", end_time: "HH:MM"}``."""

    start_time: str
    end_time: str

    @field_validator("start_time")
    @classmethod
    def _start(cls, v: str) -> str:
        _minutes(v, end=False)
        return v

    @field_validator("end_time")
    @classmethod
    def _end(cls, v: str) -> str:
        _minutes(v, end=True)
        return v


def _name_range(text: str, names: list[str], what: str) -> tuple[int, int]:
    def one(part: str) -> int:
        key = part.strip().lower()
        if key in names:
            return names.index(key) + 1
        if what == "month" and key.isdigit() and 1 <= int(key) <= 12:
            return int(key)
        raise ValueError(f"invalid {what} '{part.strip()}': expected one of "
                         f"{', '.join(names)}")

    first, sep, last = text.partition(":")
    begin = one(first)
    end = one(last) if sep else begin
    if end < begin:
        raise ValueError(f"invalid {what} range '{text}': the start comes after the end")
    return begin, end


def _int_range(text: str, what: str, low: int, high: int) -> tuple[int, int]:
    first, sep, last = text.partition(":")
    try:
        begin = int(first.strip())
        end = int(last.strip()) if sep else begin
    except ValueError:
        raise ValueError(f"invalid {what} '{text}': expected a number or a range such as "
                         f"'{'1:5' if what == 'day of month' else '2024:2026'}'") from None
    for value in (begin, end):
        if not low <= value <= high or (what == "day of month" and value == 0):
            raise ValueError(f"invalid {what} '{text}': {value} is out of range")
    if what == "day of month" and begin < 0 < end:
        raise ValueError(f"invalid day of month range '{text}': a negative start needs a "
                         "negative end (e.g. -7:-1)")
    if ((begin > 0 and end > 0) or (begin < 0 and end < 0)) and end < begin:
        raise ValueError(f"invalid {what} range '{text}': the start comes after the end")
    return begin, end


class TimeIntervalSpecModel(Strict):
    """One spec of a named interval (all fields optional; absent = any)."""

    times: list[TimeRangeModel] | None = None
    weekdays: list[str] | None = None
    days_of_month: list[str] | None = None
    months: list[str] | None = None
    years: list[str] | None = None
    location: str | None = Field(default=None, min_length=1)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, v: list[str] | None) -> list[str] | None:
        for item in v or []:
            _name_range(item, _WEEKDAYS, "weekday")
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: list[str] | None) -> list[str] | None:
        for item in v or []:
            _name_range(item, _MONTHS, "month")
        return v

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, v: list[str] | None) -> list[str] | None:
        for item in v or []:
            _int_range(item, "day of month", -31, 31)
        return v

    @field_validator("years")
    @classmethod
    def _years(cls, v: list[str] | None) -> list[str] | None:
        for item in v or []:
            _int_range(item, "year", 1, 9999)
        return v

    @field_validator("location")
    @classmethod
    def _location(cls, v: str | None) -> str | None:
        if v is None:
            return v
        return check_timezone(v)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes since local midnight; ``end_min < start_min`` crosses midnight."""

    start_min: int
    end_min: int

    @property
    def overnight(self) -> bool:
        """True when the range runs past midnight into the next day."""
        return self.end_min <= self.start_min


@dataclass(frozen=True, slots=True)
class IntervalSpec:
    """A compiled spec (see the module docstring); ``None`` fields match anything."""

    times: tuple[TimeRange, ...] = ()
    weekdays: frozenset[int] | None = None  # 0 = Monday
    days_of_month: tuple[tuple[int, int], ...] | None = None
    months: frozenset[int] | None = None  # 1..12
    years: tuple[tuple[int, int], ...] | None = None
    location: str | None = None

    def day_matches(self, day: date) -> bool:
        """Whether the calendar fields (weekday, day, month, year) hold on ``day``."""
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return False
        if self.months is not None and day.month not in self.months:
            return False
        if self.years is not None and not any(a <= day.year <= b for a, b in self.years):
            return False
        if self.days_of_month is not None:
            size = calendar.monthrange(day.year, day.month)[1]
            for begin, end in self.days_of_month:
                b = size + begin + 1 if begin < 0 else begin
                e = size + end + 1 if end < 0 else end
                if b > size:
                    continue
                b, e = max(b, -size), min(e, size)
                if b <= day.day <= e:
                    break
            else:
                return False
        return True

    def contains_local(self, local: datetime) -> bool:
        """Membership of a wall-clock time already expressed in the right zone."""
        if not self.times:
            return self.day_matches(local.date())
        minute = local.hour * 60 + local.minute
        for rng in self.times:
            if not rng.overnight:
                if rng.start_min <= minute < rng.end_min and self.day_matches(local.date()):
                    return True
                continue
            if minute >= rng.start_min and self.day_matches(local.date()):
                return True
            if minute < rng.end_min and self.day_matches(local.date() - timedelta(days=1)):
                return True
        return False

    def boundaries(self) -> tuple[int, ...]:
        """Local minutes of day where membership may change (for :func:`window_end`)."""
        out = {0}
        for rng in self.times:
            out.add(rng.start_min % 1440)
            out.add(rng.end_min % 1440)
        return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """A named interval: a union of specs."""

    name: str
    specs: tuple[IntervalSpec, ...]

    def contains(self, at: datetime, tz: str | None = None) -> bool:
        """Whether the aware instant ``at`` is inside the interval.

        Each spec is evaluated in its own ``location``, else in ``tz``, else UTC.
        """
        for spec in self.specs:
            zone = ZoneInfo(spec.location or tz or "UTC")
            if spec.contains_local(at.astimezone(zone)):
                return True
        return False


def compile_spec(model: TimeIntervalSpecModel, *, allow_overnight: bool = False) -> IntervalSpec:
    """Compile a validated spec; raise ValueError for an overnight range when not allowed."""
    times: list[TimeRange] = []
    for rng in model.times or []:
        start = _minutes(rng.start_time, end=False)
        end = _minutes(rng.end_time, end=True)
        if end <= start and not allow_overnight:
            raise ValueError(f"end_time {rng.end_time} must be after start_time "
                             f"{rng.start_time} (split a range that crosses midnight in two)")
        if end == start:
            raise ValueError(f"empty time range {rng.start_time}–{rng.end_time}")
        times.append(TimeRange(start, end))
    weekdays = None
    if model.weekdays is not None:
        weekdays = frozenset(d - 1 for item in model.weekdays
                             for d in range(*_inclusive(_name_range(item, _WEEKDAYS,
                                                                    "weekday"))))
    months = None
    if model.months is not None:
        months = frozenset(m for item in model.months
                           for m in range(*_inclusive(_name_range(item, _MONTHS, "month"))))
    days = None
    if model.days_of_month is not None:
        days = tuple(_int_range(item, "day of month", -31, 31) for item in model.days_of_month)
    years = None
    if model.years is not None:
        years = tuple(_int_range(item, "year", 1, 9999) for item in model.years)
    return IntervalSpec(times=tuple(times), weekdays=weekdays,
                        days_of_month=days, months=months, years=years,
                        location=model.location)


def _inclusive(bounds: tuple[int, int]) -> tuple[int, int]:
    return bounds[0], bounds[1] + 1


def compile_interval(name: str, specs: Sequence[TimeIntervalSpecModel], *,
                     allow_overnight: bool = False) -> TimeInterval:
    """Compile a named interval (raises ValueError like :func:`compile_spec`)."""
    return TimeInterval(name=name, specs=tuple(compile_spec(s, allow_overnight=allow_overnight)
                                               for s in specs))


#: How far :func:`window_end` looks ahead before giving up on a window that never ends.
WINDOW_HORIZON = timedelta(days=8)


def window_end(interval: TimeInterval, at: datetime, tz: str | None = None) -> datetime | None:
    """The first instant after ``at`` that is outside ``interval`` (``at`` must be inside).

    Returns None when ``at`` is outside. Windows that follow each other (Friday night,
    then the weekend, then Sunday night) are crossed as one. Wall-clock boundaries are
    converted to instants in the evaluation zone, so DST changes are handled; a window
    that does not end within :data:`WINDOW_HORIZON` ends at the horizon (held messages
    are delayed, never held forever).
    """
    if not interval.contains(at, tz):
        return None
    candidates: set[datetime] = set()
    for spec in interval.specs:
        zone = ZoneInfo(spec.location or tz or "UTC")
        local_day = at.astimezone(zone).date()
        for offset in range(WINDOW_HORIZON.days + 2):
            day = local_day + timedelta(days=offset)
            for minute in spec.boundaries():
                wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
                instant = wall.astimezone(UTC)
                if instant > at:
                    candidates.add(instant)
    horizon = at + WINDOW_HORIZON
    for instant in sorted(candidates):
        if instant >= horizon:
            break
        if not interval.contains(instant, tz):
            return instant
    return horizon
