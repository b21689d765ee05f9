"""Collect and check the incident rule keys of a rule set (called by the loader).

Top-level ``time_intervals``, ``quiet_hours`` (mappings merged across files, a name
defined twice is an error), ``inhibit_rules`` (lists concatenated in file order) and
``storm_control`` (at most one file). Cross-references are checked with positions: a
route's ``mute_time_intervals``/``active_time_intervals`` must name time intervals; an
audience's or contact's ``quiet_hours`` must name a quiet-hours policy (or ``none``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from router.rules.inhibit import InhibitRule, InhibitRuleModel
from router.rules.lifecycle import StormControl
from router.rules.matchers import Matcher, MatcherParseError, MatchType, parse_matchers
from router.rules.problems import did_you_mean
from router.rules.schema import RouteModel, RuleFileModel
from router.rules.time_intervals import TimeInterval, TimeIntervalSpecModel, compile_interval
from router.yamlsrc import Path_, SourceFile

__all__ = ["NO_QUIET_HOURS", "IncidentRules", "collect_incident_rules"]

#: The ``quiet_hours`` value that switches quiet hours off for a contact.
NO_QUIET_HOURS = "none"


@dataclass(frozen=True)
class IncidentRules:
    """The compiled incident keys of a rule set."""

    time_intervals: Mapping[str, TimeInterval] = field(default_factory=dict)
    quiet_hours: Mapping[str, TimeInterval] = field(default_factory=dict)
    inhibit_rules: tuple[InhibitRule, ...] = ()
    storm_control: StormControl | None = None


class _Reporter(Protocol):
    def error(self, src: SourceFile, path: Path_, message: str, *, key: bool = False) -> None:
        ...


def collect_incident_rules(
    files: Sequence[tuple[SourceFile, RuleFileModel]],
    route: tuple[SourceFile, RouteModel] | None,
    ctx: _Reporter,
) -> IncidentRules:
    """Compile the incident keys of every file, reporting problems through ``ctx``."""
    intervals: dict[str, TimeInterval] = {}
    quiet: dict[str, TimeInterval] = {}
    inhibit: list[InhibitRule] = []
    storm: tuple[SourceFile, StormControl] | None = None
    for src, model in files:
        _named(src, "time_intervals", model.time_intervals or {}, intervals, ctx,
               overnight=False)
        _named(src, "quiet_hours", model.quiet_hours or {}, quiet, ctx, overnight=True)
        for i, rule in enumerate(model.inhibit_rules or []):
            compiled = _inhibit_rule(src, ("inhibit_rules", i), rule, ctx)
            if compiled is not None:
                inhibit.append(compiled)
        if model.storm_control is not None:
            if storm is not None:
                ctx.error(src, ("storm_control",), "'storm_control' is already defined in "
                          f"{storm[0].path}; define it in one file only", key=True)
            else:
                storm = (src, model.storm_control)
    if NO_QUIET_HOURS in quiet:
        for src, model in files:
            if NO_QUIET_HOURS in (model.quiet_hours or {}):
                ctx.error(src, ("quiet_hours", NO_QUIET_HOURS), "'none' is reserved (it "
                          "switches quiet hours off for a contact)", key=True)
    for src, model in files:
        for name, audience in (model.audiences or {}).items():
            path: Path_ = ("audiences", name)
            _check_quiet_ref(src, (*path, "quiet_hours"), audience.quiet_hours, quiet, ctx)
            for i, contact in enumerate(audience.contacts or []):
                _check_quiet_ref(src, (*path, "contacts", i, "quiet_hours"),
                                 contact.quiet_hours, quiet, ctx)
    if route is not None:
        _check_route_intervals(route[0], route[1], ("route",), intervals, ctx)
    return IncidentRules(time_intervals=intervals, quiet_hours=quiet,
                         inhibit_rules=tuple(inhibit),
                         storm_control=storm[1] if storm is not None else None)


def _named(src: SourceFile, key: str, table: Mapping[str, list[TimeIntervalSpecModel]],
           out: dict[str, TimeInterval], ctx: _Reporter, *, overnight: bool) -> None:
    for name, specs in table.items():
        path: Path_ = (key, name)
        if name in out:
            ctx.error(src, path, f"{key.replace('_', ' ')} '{name}' is defined twice",
                      key=True)
            continue
        if not specs:
            ctx.error(src, path, f"'{name}' is empty: give at least one interval", key=True)
            continue
        try:
            out[name] = compile_interval(name, specs, allow_overnight=overnight)
        except ValueError as exc:
            ctx.error(src, path, str(exc), key=True)


def _matchers(src: SourceFile, path: Path_, texts: list[str] | None,
              eq: dict[str, str] | None, rx: dict[str, str] | None,
              ctx: _Reporter) -> list[Matcher] | None:
    out: list[Matcher] = []
    ok = True
    for i, text in enumerate(texts or []):
        try:
            out.extend(parse_matchers(text))
        except MatcherParseError as exc:
            ctx.error(src, (*path[:-1], f"{path[-1]}_matchers", i),
                      f"bad matcher {text!r} at character {exc.column}: {exc.message}")
            ok = False
    for kind, table in (("match", eq), ("match_re", rx)):
        for label, value in (table or {}).items():
            try:
                mtype = MatchType.EQUAL if kind == "match" else MatchType.REGEX
                out.append(Matcher.create(label, mtype, value, match_re=kind == "match_re"))
            except MatcherParseError as exc:
                ctx.error(src, (*path[:-1], f"{path[-1]}_{kind}", label), exc.message)
                ok = False
    return out if ok else None


def _inhibit_rule(src: SourceFile, path: Path_, rule: InhibitRuleModel,
                  ctx: _Reporter) -> InhibitRule | None:
    source = _matchers(src, (*path, "source"), rule.source_matchers, rule.source_match,
                       rule.source_match_re, ctx)
    target = _matchers(src, (*path, "target"), rule.target_matchers, rule.target_match,
                       rule.target_match_re, ctx)
    if source is None or target is None:
        return None
    return InhibitRule.build(source, target, rule.equal or [])


def _check_quiet_ref(src: SourceFile, path: Path_, name: str | None,
                     quiet: Mapping[str, TimeInterval], ctx: _Reporter) -> None:
    if name is None or name == NO_QUIET_HOURS or name in quiet:
        return
    ctx.error(src, path, f"unknown quiet_hours '{name}'{did_you_mean(name, quiet)} "
              f"(or '{NO_QUIET_HOURS}' to switch them off)")


def _check_route_intervals(src: SourceFile, model: RouteModel, path: Path_,
                           intervals: Mapping[str, TimeInterval], ctx: _Reporter) -> None:
    for key in ("mute_time_intervals", "active_time_intervals"):
        for i, name in enumerate(getattr(model, key) or []):
            if name not in intervals:
                ctx.error(src, (*path, key, i), f"unknown time interval '{name}'"
                          f"{did_you_mean(name, intervals)}")
    for i, child in enumerate(model.routes or []):
        _check_route_intervals(src, child, (*path, "routes", i), intervals, ctx)
