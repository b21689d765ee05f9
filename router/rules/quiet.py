"""Quiet hours: the one verdict the incident engine, explanations and rule tests share.

Whether a notice to one recipient is held at one instant depends on the recipient's
quiet-hours policy (the contact's ``quiet_hours``, else its audience's; ``none`` switches
them off), the window that policy draws in the recipient's own IANA time zone, and
whether the route may break quiet hours for the notice's severity
(``break_quiet_hours``; critical yes, anything else no, by default).

:func:`quiet_verdict` is a pure function of those inputs and the clock: the incident
engine (:mod:`router.incidents.flush`) holds a notice until ``held_until``, ``tocsin
rules test --labels`` shows the verdict per recipient, and rule test files check it
(``quiet_hours_hold``, ``held_until``), so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from router.models import Contact, IncidentPolicy
from router.rules.incident_rules import NO_QUIET_HOURS, IncidentRules
from router.rules.time_intervals import window_end

__all__ = ["QuietVerdict", "format_local", "quiet_until", "quiet_verdict"]


@dataclass(frozen=True, slots=True)
class QuietVerdict:
    """Whether quiet hours hold a notice for one recipient at one instant.

    ``policy`` is the recipient's quiet-hours policy name (``None`` when it has none,
    ``"none"`` when it opted out); ``until`` the end of its current quiet hours (aware
    UTC; ``None`` when it is not in quiet hours); ``breaks`` whether the route may send
    this severity during quiet hours.
    """

    policy: str | None
    timezone: str
    severity: str
    until: datetime | None
    breaks: bool

    @property
    def quiet(self) -> bool:
        """The recipient is in quiet hours now."""
        return self.until is not None

    @property
    def held_until(self) -> datetime | None:
        """When a held notice is released; ``None`` when it is sent now."""
        return None if self.breaks else self.until

    @property
    def held(self) -> bool:
        """Quiet hours hold the notice."""
        return self.held_until is not None

    def describe(self) -> str:
        """One sentence for people: held until when (local and UTC), or why not."""
        if self.policy is None:
            return "no quiet hours for this recipient"
        if self.policy == NO_QUIET_HOURS:
            return "quiet hours switched off for this recipient (quiet_hours: none)"
        if self.until is None:
            return f"not in quiet hours ({self.policy}): sent now"
        when = f"{format_local(self.until, self.timezone)} ({_utc(self.until)})"
        if self.breaks:
            return (f"in quiet hours ({self.policy}) until {when}, but the route breaks "
                    f"quiet hours for {self.severity}: sent now")
        return f"held by quiet hours ({self.policy}) until {when}"


def format_local(instant: datetime, timezone: str) -> str:
    """``2024-05-06 08:00 Europe/Paris``: the wall-clock time in ``timezone``."""
    local = instant.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {timezone}"


def _utc(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quiet_until(rules: IncidentRules, contact: Contact, now: datetime) -> datetime | None:
    """The end of the contact's current quiet hours, or None when not quiet now."""
    name = contact.quiet_hours
    if name is None or name == NO_QUIET_HOURS:
        return None
    interval = rules.quiet_hours.get(name)
    if interval is None:
        return None
    return window_end(interval, now, contact.timezone)


def quiet_verdict(rules: IncidentRules, policy: IncidentPolicy, severity: str,
                  contact: Contact, now: datetime) -> QuietVerdict:
    """The quiet-hours verdict for a notice of ``severity`` to ``contact`` at ``now``."""
    return QuietVerdict(policy=contact.quiet_hours, timezone=contact.timezone,
                        severity=severity, until=quiet_until(rules, contact, now),
                        breaks=policy.breaks_quiet_hours(severity))
