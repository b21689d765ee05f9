"""Rule keys for the life of incidents: route timers, quiet hours, storm control.

The route keys (``group_wait``, ``group_interval``, ``repeat_interval``,
``follow_up_after``, ``max_follow_ups``, ``break_quiet_hours``,
``on_resolved_during_quiet_hours``, ``mute_time_intervals``, ``active_time_intervals``,
``ack``) are fields of :class:`router.rules.schema.RouteModel`; :func:`build_policy` turns them
into the route's effective :class:`~router.models.IncidentPolicy` with inheritance
(everything is inherited from the parent route except the two time-interval lists, as in
Alertmanager; ``ack`` merges per key over the parent's: router/rules/ack_policy.py).
Top-level ``quiet_hours`` and ``storm_control`` are modelled here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from router.models import IncidentPolicy
from router.rules.ack_policy import merge_ack
from router.rules.durations import Duration
from router.rules.time_intervals import TimeIntervalSpecModel
from router.strict import Strict

if TYPE_CHECKING:
    from router.rules.schema import RouteModel

__all__ = [
    "BreakQuietHours",
    "QuietHoursSpecs",
    "ResolvedDuringQuietHours",
    "StormControl",
    "StormControlModel",
    "build_policy",
]

#: ``break_quiet_hours``: a boolean for every severity, or a map severity → boolean
#: (``default`` for the others).
BreakQuietHours = bool | dict[str, bool]
ResolvedDuringQuietHours = Literal["summary", "drop"]
#: A named quiet-hours policy: time interval specs whose ``times`` may cross midnight,
#: evaluated in each recipient's own time zone.
QuietHoursSpecs = list[TimeIntervalSpecModel]


class StormControlModel(Strict):
    """``storm_control``: above ``max_incidents`` new incidents for one audience within
    ``window``, the audience gets one summary instead of a first notice per incident."""

    max_incidents: int = Field(ge=1)
    window: Duration = 600.0
    template: str | None = None  # default: the route's template (its `.storm` variant)


#: The compiled storm control settings (a plain alias: the model is already immutable).
StormControl = StormControlModel


def build_policy(model: RouteModel, parent: IncidentPolicy | None) -> IncidentPolicy:
    """The effective policy of a route: its own keys over its parent's (or defaults)."""
    base = parent if parent is not None else IncidentPolicy()
    breaks = base.break_quiet_hours
    if model.break_quiet_hours is not None:
        if isinstance(model.break_quiet_hours, bool):
            breaks = (("default", model.break_quiet_hours),)
        else:
            table = dict(model.break_quiet_hours)
            table.setdefault("default", False)
            breaks = tuple(sorted(table.items()))
    return IncidentPolicy(
        group_wait_s=_pick(model.group_wait, base.group_wait_s),
        group_interval_s=_pick(model.group_interval, base.group_interval_s),
        repeat_interval_s=_pick(model.repeat_interval, base.repeat_interval_s),
        follow_up_after_s=(model.follow_up_after if model.follow_up_after is not None
                           else base.follow_up_after_s),
        max_follow_ups=(model.max_follow_ups if model.max_follow_ups is not None
                        else base.max_follow_ups),
        break_quiet_hours=breaks,
        resolved_during_quiet_hours=(model.on_resolved_during_quiet_hours
                                     or base.resolved_during_quiet_hours),
        mute_time_intervals=tuple(model.mute_time_intervals or ()),
        active_time_intervals=tuple(model.active_time_intervals or ()),
        ack=merge_ack(model.ack, base.ack),
    )


def _pick(value: float | None, inherited: float) -> float:
    return inherited if value is None else value
