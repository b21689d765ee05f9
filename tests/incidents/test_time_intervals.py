"""Time interval membership and quiet-hours windows (pure, zoneinfo, DST)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from router.rules.time_intervals import (
    TimeIntervalSpecModel,
    compile_interval,
    window_end,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def interval(*specs: dict[str, object], overnight: bool = False):  # type: ignore[no-untyped-def]
    return compile_interval("x", [TimeIntervalSpecModel.model_validate(s) for s in specs],
                            allow_overnight=overnight)


NIGHTS_WEEKENDS = interval({"times": [{"start_time": "22:00", "end_time": "08:00"}]},
                           {"weekdays": ["saturday", "sunday"]}, overnight=True)


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def test_business_hours_weekdays_and_location() -> None:
    """Weekday range and times, evaluated in the interval's own location."""
    hours = interval({"weekdays": ["monday:friday"], "location": "Europe/Paris",
                      "times": [{"start_time": "09:00", "end_time": "18:00"}]})
    assert hours.contains(local(PARIS, 2024, 5, 6, 9, 0))  # Monday
    assert not hours.contains(local(PARIS, 2024, 5, 6, 18, 0))  # end is exclusive
    assert not hours.contains(local(PARIS, 2024, 5, 4, 10, 0))  # Saturday
    assert hours.contains(datetime(2024, 5, 6, 7, 30, tzinfo=UTC))  # 09:30 Paris


def test_negative_days_of_month_months_and_years() -> None:
    """-3:-1 is the last three days of the month (February of a leap year too)."""
    end = interval({"days_of_month": ["-3:-1"], "months": ["february"], "years": ["2024"]})
    assert end.contains(datetime(2024, 2, 27, tzinfo=UTC))
    assert end.contains(datetime(2024, 2, 29, 23, 59, tzinfo=UTC))
    assert not end.contains(datetime(2024, 2, 26, tzinfo=UTC))
    assert not end.contains(datetime(2025, 2, 27, tzinfo=UTC))
    assert not end.contains(datetime(2024, 3, 30, tzinfo=UTC))


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    """22:00–08:00 Monday→Tuesday: 23:00 Monday and 07:59 Tuesday are inside, 08:00 not."""
    weeknights = interval({"weekdays": ["monday"], "times": [
        {"start_time": "22:00", "end_time": "08:00"}]}, overnight=True)
    assert weeknights.contains(datetime(2024, 5, 6, 23, 0, tzinfo=UTC))
    assert weeknights.contains(datetime(2024, 5, 7, 7, 59, tzinfo=UTC))
    assert not weeknights.contains(datetime(2024, 5, 7, 8, 0, tzinfo=UTC))
    assert not weeknights.contains(datetime(2024, 5, 7, 23, 0, tzinfo=UTC))


def test_overnight_ranges_are_rejected_for_time_intervals() -> None:
    """Alertmanager time_intervals need end after start (only quiet hours may cross)."""
    with pytest.raises(ValueError, match="must be after"):
        interval({"times": [{"start_time": "22:00", "end_time": "08:00"}]})


def test_weekend_night_and_next_night_are_one_window() -> None:
    """Friday 23:00 Paris → quiet until Monday 08:00 Paris (nights and weekend chained)."""
    friday = local(PARIS, 2024, 5, 3, 23, 0)
    end = window_end(NIGHTS_WEEKENDS, friday.astimezone(UTC), "Europe/Paris")
    assert end == local(PARIS, 2024, 5, 6, 8, 0)
    assert window_end(NIGHTS_WEEKENDS, local(PARIS, 2024, 5, 6, 12, 0), "Europe/Paris") is None


def test_sunday_0230_in_paris_ends_monday_0800() -> None:
    """The scenario: 02:30 on a Sunday in Paris is quiet until Monday 08:00."""
    at = local(PARIS, 2024, 5, 5, 2, 30)
    assert NIGHTS_WEEKENDS.contains(at, "Europe/Paris")
    assert window_end(NIGHTS_WEEKENDS, at, "Europe/Paris") == local(PARIS, 2024, 5, 6, 8, 0)


@pytest.mark.parametrize(("tz", "night", "morning_utc"), [
    # Spring forward: Paris 31 March 2024 02:00 → 03:00; 08:00 CEST is 06:00 UTC.
    ("Europe/Paris", (2024, 3, 30, 23, 0), datetime(2024, 4, 1, 6, 0, tzinfo=UTC)),
    # Fall back: Paris 27 October 2024 03:00 → 02:00; Monday 08:00 CET is 07:00 UTC.
    ("Europe/Paris", (2024, 10, 26, 23, 0), datetime(2024, 10, 28, 7, 0, tzinfo=UTC)),
    # New York spring forward 10 March 2024; Monday 08:00 EDT is 12:00 UTC.
    ("America/New_York", (2024, 3, 9, 23, 0), datetime(2024, 3, 11, 12, 0, tzinfo=UTC)),
    # New York fall back 3 November 2024; Monday 08:00 EST is 13:00 UTC.
    ("America/New_York", (2024, 11, 2, 23, 0), datetime(2024, 11, 4, 13, 0, tzinfo=UTC)),
])
def test_dst_weekends_end_at_local_eight(tz: str, night: tuple[int, ...],
                                         morning_utc: datetime) -> None:
    """Across a DST change the window still ends at 08:00 local time on Monday."""
    at = datetime(*night, tzinfo=ZoneInfo(tz))  # type: ignore[misc]
    assert window_end(NIGHTS_WEEKENDS, at, tz) == morning_utc


def test_dst_wall_clock_membership() -> None:
    """On the fall-back night 01:30 New York happens twice; both are quiet, 08:00 is not."""
    first = datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2024, 11, 3, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert NIGHTS_WEEKENDS.contains(first, "America/New_York")
    assert NIGHTS_WEEKENDS.contains(second, "America/New_York")
    tuesday_8 = datetime(2024, 11, 5, 13, 0, tzinfo=UTC)
    assert not NIGHTS_WEEKENDS.contains(tuesday_8, "America/New_York")


def test_a_window_that_never_ends_stops_at_the_horizon() -> None:
    """Always quiet: held messages are delayed to the horizon, never held forever."""
    always = interval({"times": [{"start_time": "00:00", "end_time": "24:00"}]})
    at = datetime(2024, 5, 6, tzinfo=UTC)
    end = window_end(always, at)
    assert end is not None and (end - at).days == 8
