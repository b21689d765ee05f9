"""Import an Alertmanager configuration as a Tocsin rule file.

:func:`import_alertmanager` turns ``alertmanager.yml`` into one rule file (YAML text,
commented) that routes alerts exactly as Alertmanager's route tree does:

* the route tree: ``matchers`` (every syntax), ``match``, ``match_re`` (anchored),
  ``continue``, ``group_by`` (also ``'...'``), ``group_wait`` / ``group_interval`` /
  ``repeat_interval``, ``mute_time_intervals`` / ``active_time_intervals``. Matchers and
  regexes are kept verbatim: Tocsin's regexes are RE2, as Alertmanager's;
* ``time_intervals`` (and the deprecated top-level ``mute_time_intervals``) and
  ``inhibit_rules`` (new and old matcher styles);
* each receiver becomes an audience named after it (:mod:`router.authoring.importer_receivers`),
  the ``receiver`` of a route its ``audiences``;
* a minimal ``default`` template (email, plus SMS/topic when used), so the file passes
  ``tocsin rules check`` on its own.

Everything else (Slack/PagerDuty/... integrations, ``global`` settings, Go ``templates``,
route ``labels``) is listed in ``ImportResult.report``
with its line in the Alertmanager file. An invalid configuration raises
:class:`AlertmanagerConfigError` with positioned problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from router import __version__
from router.authoring.importer_matchers import check_matcher_text, check_regex
from router.authoring.importer_receivers import AudiencePlan, plan_audiences
from router.authoring.importer_template import template_block
from router.authoring.importer_yaml import Block, flow_list, scalar
from router.errors import AlertmanagerConfigError, InvalidMatcher, Problem
from router.rules.durations import parse_duration_s
from router.rules.problems import did_you_mean
from router.rules.time_intervals import TimeIntervalSpecModel
from router.yamlsrc import Path_, SourceFile, read_yaml

__all__ = ["AlertmanagerConfigError", "ImportResult", "ReportItem", "import_alertmanager"]

_TOP_KEYS = ("global", "route", "receivers", "inhibit_rules", "templates", "time_intervals",
             "mute_time_intervals", "tracing")
_ROUTE_KEYS = ("receiver", "group_by", "continue", "match", "match_re", "matchers",
               "mute_time_intervals", "active_time_intervals", "group_wait",
               "group_interval", "repeat_interval", "routes", "labels")
_TIMERS = ("group_wait", "group_interval", "repeat_interval")
_INHIBIT_KEYS = ("source_matchers", "target_matchers", "source_match", "source_match_re",
                 "target_match", "target_match_re", "equal")
_SPEC_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")
_TRUE = ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON")
_FALSE = ("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF")


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One thing of the Alertmanager configuration that was not imported as is.

    ``kind`` is ``"not imported"`` (dropped or replaced by a placeholder) or
    ``"rewritten"`` (imported with an equivalent spelling, e.g. the deprecated top-level
    ``mute_time_intervals``).
    """

    line: int  # 1-based line in the Alertmanager file; 0 when unknown
    kind: str
    message: str

    def format(self, source: str) -> str:
        """``alertmanager.yml:12: not imported: ...``."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.kind}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The imported rule file and the report of what could not be mapped."""

    rules_yaml: str
    report: tuple[ReportItem, ...]
    #: Alertmanager receiver name → Tocsin audience name.
    audiences: Mapping[str, str]
    source: str = "alertmanager.yml"

    @property
    def not_imported(self) -> tuple[ReportItem, ...]:
        """The report items that were dropped or replaced by placeholders."""
        return tuple(i for i in self.report if i.kind == "not imported")

    def format_report(self) -> str:
        """The report as text, one item per line, and a summary line."""
        lines = [item.format(self.source) for item in self.report]
        counts = {k: sum(1 for i in self.report if i.kind == k)
                  for k in ("not imported", "rewritten")}
        lines.append(f"{counts['not imported']} item(s) not imported, {counts['rewritten']} "
                     f"rewritten; {len(self.audiences)} receiver(s) became audiences")
        return "\n".join(lines) + "\n"


@dataclass
class _Ctx:
    src: SourceFile
    problems: list[Problem] = field(default_factory=list)
    report: list[ReportItem] = field(default_factory=list)
    plans: dict[str, AudiencePlan] = field(default_factory=dict)
    intervals: set[str] = field(default_factory=set)
    channels_used: set[str] = field(default_factory=set)

    def line(self, path: Path_) -> int:
        return self.src.mark(path).line

    def error(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(self.src.problem(path, message, key=key))

    def not_imported(self, path: Path_, message: str) -> None:
        self.report.append(ReportItem(self.line(path), "not imported", message))

    def rewritten(self, path: Path_, message: str) -> None:
        self.report.append(ReportItem(self.line(path), "rewritten", message))

    def where(self, path: Path_) -> str:
        mark = self.src.mark(path, key=len(path) == 1)
        return f"{PurePath(self.src.path).name}:{mark.line}"


def _str_list(ctx: _Ctx, value: Any, path: Path_, what: str) -> list[str] | None:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        ctx.error(path, f"'{what}' must be a list of strings")
        return None
    return value


def _str_map(ctx: _Ctx, value: Any, path: Path_, what: str) -> dict[str, str] | None:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.error(path, f"'{what}' must be a mapping of label name to value")
        return None
    for k, v in value.items():
        if not isinstance(v, str):
            ctx.error((*path, k), f"'{what}' value for '{k}' must be a string, not "
                      f"{'null' if v is None else type(v).__name__}")
            return None
    return value


# --------------------------------------------------------------------------- matchers


def _matchers(ctx: _Ctx, out: Block, indent: int, key: str, value: Any, path: Path_) -> None:
    """Write a ``matchers``-style list (route or inhibit rule), each entry verbatim."""
    items = _str_list(ctx, value, path, key)
    if items is None:
        return
    out.line(indent, f"{key}:")
    for i, text in enumerate(items):
        ipath = (*path, i)
        try:
            check_matcher_text(text)
        except InvalidMatcher as exc:
            ctx.error(ipath, f"bad matcher {text!r}: {exc}")
            continue
        out.line(indent + 1, f"- {scalar(text)}")


def _match_map(ctx: _Ctx, out: Block, indent: int, key: str, value: Any, path: Path_,
               *, regex: bool) -> None:
    """Write ``match`` / ``match_re`` (and the inhibit rules' old-style maps)."""
    items = _str_map(ctx, value, path, key)
    if items is None:
        return
    out.line(indent, f"{key}:")
    for name, text in items.items():
        vpath = (*path, name)
        if regex:
            try:
                check_regex(text)
            except InvalidMatcher as exc:
                ctx.error(vpath, f"{key} '{name}': {exc}")
                continue
        out.line(indent + 1, f"{scalar(name)}: {scalar(text)}")


# ------------------------------------------------------------------------------ routes


def _bool(ctx: _Ctx, value: Any, path: Path_) -> bool | None:
    if value in _TRUE:
        return True
    if value in _FALSE or value is None:
        return False
    ctx.error(path, f"'continue' must be true or false, not {value!r}")
    return None


def _route(ctx: _Ctx, node: Any, path: Path_, parent_channels: list[str] | None) -> Block:
    out = Block()
    if not isinstance(node, dict):
        ctx.error(path, "a route must be a mapping")
        return out
    root = parent_channels is None
    for key in node:
        if key not in _ROUTE_KEYS:
            ctx.error((*path, key), f"unknown route key '{key}'"
                      f"{did_you_mean(key, _ROUTE_KEYS)}", key=True)
    if root:
        for key in ("matchers", "match", "match_re"):
            if node.get(key):
                ctx.error((*path, key), "the root route must not have any matchers",
                          key=True)
        if _bool(ctx, node.get("continue"), (*path, "continue")):
            ctx.error((*path, "continue"), "the root route cannot have 'continue' set",
                      key=True)
        if not node.get("receiver"):
            ctx.error(path, "the root route must specify a default receiver")
    if "matchers" in node:
        _matchers(ctx, out, 0, "matchers", node["matchers"], (*path, "matchers"))
    if "match" in node:
        _match_map(ctx, out, 0, "match", node["match"], (*path, "match"), regex=False)
    if "match_re" in node:
        _match_map(ctx, out, 0, "match_re", node["match_re"], (*path, "match_re"),
                   regex=True)
    if not root and _bool(ctx, node.get("continue"), (*path, "continue")):
        out.line(0, "continue: true")
    channels = parent_channels
    receiver = node.get("receiver")
    if receiver is not None:
        plan = ctx.plans.get(receiver) if isinstance(receiver, str) else None
        if plan is None:
            ctx.error((*path, "receiver"), f"undefined receiver {receiver!r} used in route"
                      f"{did_you_mean(str(receiver), ctx.plans)}")
        else:
            note = "" if plan.name == receiver else f"  # receiver: {receiver}"
            out.line(0, f"audiences: {flow_list([plan.name])}{note}")
            if plan.channels != parent_channels:
                channels = plan.channels
                ctx.channels_used.update(channels)
                out.line(0, f"channels: {{default: {flow_list(channels)}}}")
    if root:
        out.line(0, "template: default")
        out.line(0, "severity: {label: severity, default: warning}")
    _route_options(ctx, node, path, out)
    if "labels" in node:
        ctx.not_imported((*path, "labels"), "route 'labels' (Alertmanager 0.34 route "
                         "labels for notifications) have no Tocsin equivalent")
    children = node.get("routes")
    if children is not None:
        if not isinstance(children, list):
            ctx.error((*path, "routes"), "'routes' must be a list of routes")
        elif children:
            out.line(0, "routes:")
            for i, child in enumerate(children):
                cpath = (*path, "routes", i)
                block = _route(ctx, child, cpath, channels or [])
                out.comment(1, ctx.where(cpath))
                out.item(1, block)
    return out


def _route_options(ctx: _Ctx, node: dict[str, Any], path: Path_, out: Block) -> None:
    if "group_by" in node:
        group_by = _str_list(ctx, node["group_by"], (*path, "group_by"), "group_by")
        if group_by is not None:
            if "..." in group_by and len(group_by) > 1:
                ctx.error((*path, "group_by"), "cannot have wildcard group_by (`...`) and "
                          "other labels at the same time")
            elif len(set(group_by)) != len(group_by):
                ctx.error((*path, "group_by"), "duplicated label in group_by")
            else:
                out.line(0, f"group_by: {flow_list(group_by)}")
    for key in _TIMERS:
        if key in node:
            value = node[key]
            try:
                seconds = parse_duration_s(value) if isinstance(value, str) else None
            except ValueError as exc:
                ctx.error((*path, key), str(exc))
                continue
            if seconds is None:
                ctx.error((*path, key), f"'{key}' must be a duration such as 5m")
            elif seconds == 0 and key != "group_wait":
                ctx.error((*path, key), f"{key} cannot be zero")
            else:
                out.line(0, f"{key}: {scalar(value)}")
    for key in ("mute_time_intervals", "active_time_intervals"):
        if key in node:
            names = _str_list(ctx, node[key], (*path, key), key)
            for i, name in enumerate(names or []):
                if name not in ctx.intervals:
                    ctx.error((*path, key, i), f"undefined time interval {name!r} used in "
                              f"route{did_you_mean(name, ctx.intervals)}")
            if names:
                out.line(0, f"{key}: {flow_list(names)}")


# ----------------------------------------------------------- time intervals, inhibition


def _time_intervals(ctx: _Ctx, data: dict[str, Any], out: Block) -> None:
    found: list[tuple[str, Path_, list[Any]]] = []
    for top in ("time_intervals", "mute_time_intervals"):
        entries = data.get(top)
        if entries is None:
            continue
        if not isinstance(entries, list):
            ctx.error((top,), f"'{top}' must be a list of named time intervals")
            continue
        if top == "mute_time_intervals":
            ctx.rewritten((top,), "the deprecated top-level 'mute_time_intervals' is "
                          "imported as 'time_intervals'")
        for i, entry in enumerate(entries):
            path: Path_ = (top, i)
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                ctx.error(path, "a time interval needs a 'name'")
                continue
            if name in ctx.intervals:
                ctx.error((*path, "name"), f"time interval {name!r} is defined twice")
                continue
            for key in entry:
                if key not in ("name", "time_intervals"):
                    ctx.error((*path, key), f"unknown key '{key}' in time interval "
                              f"{name!r}", key=True)
            specs = entry.get("time_intervals") or []
            if not isinstance(specs, list):
                ctx.error((*path, "time_intervals"), "'time_intervals' must be a list")
                continue
            ctx.intervals.add(name)
            found.append((name, path, specs))
    if not found:
        return
    out.line(0, "time_intervals:")
    for name, path, specs in found:
        out.comment(1, ctx.where(path))
        if not specs:
            # Alertmanager accepts an interval without specs (it never holds); Tocsin
            # wants at least one spec: the year 1 is as good as never.
            ctx.rewritten(path, f"time interval {name!r} has no specs (it never holds): "
                          "written as the year 1")
            out.line(1, f"{scalar(name)}:")
            out.comment(2, "Alertmanager: no specs, never holds")
            out.line(2, "- years: ['1']")
            continue
        out.line(1, f"{scalar(name)}:")
        for j, spec in enumerate(specs):
            out.item(2, _spec(ctx, spec, (*path, "time_intervals", j)))


def _spec(ctx: _Ctx, spec: Any, path: Path_) -> Block:
    block = Block()
    if not isinstance(spec, dict):
        ctx.error(path, "a time interval spec must be a mapping")
        return block
    for key in spec:
        if key not in _SPEC_KEYS:
            ctx.error((*path, key), f"unknown key '{key}' in a time interval"
                      f"{did_you_mean(key, _SPEC_KEYS)}", key=True)
            return block
    spec = dict(spec)
    if spec.get("location") == "Local":
        ctx.not_imported((*path, "location"), "time interval location 'Local' (the "
                         "Alertmanager server's zone) written as UTC: set the IANA zone")
        spec["location"] = "UTC"
    try:
        TimeIntervalSpecModel.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        ctx.error((*path, *loc), f"invalid time interval: {message}")
        return block
    for key, value in spec.items():
        if value is None:
            continue
        if key == "location":
            block.line(0, f"location: {scalar(value)}")
        elif key == "times":
            block.line(0, "times:")
            for t in value:
                block.line(1, f"- {{start_time: {scalar(t['start_time'])}, "
                              f"end_time: {scalar(t['end_time'])}}}")
        else:
            block.line(0, f"{key}: {flow_list(value)}")
    return block


def _inhibit_rules(ctx: _Ctx, rules: Any, out: Block) -> None:
    if rules is None:
        return
    if not isinstance(rules, list):
        ctx.error(("inhibit_rules",), "'inhibit_rules' must be a list")
        return
    if not rules:
        return
    out.line(0, "inhibit_rules:")
    for i, rule in enumerate(rules):
        path: Path_ = ("inhibit_rules", i)
        block = Block()
        if not isinstance(rule, dict):
            ctx.error(path, "an inhibit rule must be a mapping")
            continue
        for key, value in rule.items():
            kpath = (*path, key)
            if key not in _INHIBIT_KEYS:
                ctx.error(kpath, f"unknown key '{key}' in an inhibit rule"
                          f"{did_you_mean(key, _INHIBIT_KEYS)}", key=True)
            elif key.endswith("_matchers"):
                _matchers(ctx, block, 0, key, value, kpath)
            elif key == "equal":
                labels = _str_list(ctx, value, kpath, key)
                if labels:
                    block.line(0, f"equal: {flow_list(labels)}")
            else:
                _match_map(ctx, block, 0, key, value, kpath, regex=key.endswith("_re"))
        out.comment(1, ctx.where(path))
        out.item(1, block)


# ------------------------------------------------------------------- everything else


def _unmapped_top_level(ctx: _Ctx, data: dict[str, Any]) -> None:
    glob = data.get("global")
    if isinstance(glob, dict):
        for key in glob:
            if key.startswith("smtp_"):
                why = "the SMTP server is set in the service config (smtp section)"
            elif key == "resolve_timeout":
                why = ("Alertmanager applies it before it sends alerts to Tocsin; keep it "
                       "in Alertmanager")
            else:
                why = "it configures Alertmanager's own integrations"
            ctx.not_imported(("global", key), f"global setting '{key}': {why}")
    elif glob is not None:
        ctx.error(("global",), "'global' must be a mapping")
    if data.get("templates"):
        ctx.not_imported(("templates",), "notification templates (Go templates) are not "
                         "converted; the rule file's 'default' template writes the messages")
    if data.get("tracing") is not None:
        ctx.not_imported(("tracing",), "'tracing' configures Alertmanager itself")


def _audiences(ctx: _Ctx, out: Block) -> None:
    out.line(0, "audiences:")
    for plan in ctx.plans.values():
        out.line(1, f"{scalar(plan.name)}:")
        desc = f"Alertmanager receiver {plan.receiver}"
        if plan.integrations:
            desc += ": " + ", ".join(plan.integrations)
        out.line(2, f"description: {scalar(desc)}")
        out.line(2, "contacts:")
        if plan.fill_in:
            out.comment(3, "FILL IN: Alertmanager notified this receiver by "
                        + "; ".join(plan.fill_in) + ", which Tocsin cannot import. Add the "
                        "people or topics to tell (email, phone or topic)"
                        + (" and remove the placeholder." if plan.contacts[0].placeholder
                           else "."))
        for c in plan.contacts:
            block = Block()
            block.line(0, f"id: {scalar(c.id)}")
            block.line(0, f"name: {scalar(c.name)}")
            for attr in ("email", "phone", "topic"):
                value = getattr(c, attr)
                if value:
                    mark = "  # placeholder: replace" if c.placeholder else ""
                    block.line(0, f"{attr}: {scalar(value)}{mark}")
            out.item(3, block)


def _header(ctx: _Ctx, out: Block) -> None:
    placeholders = [p.name for p in ctx.plans.values() if p.contacts[0].placeholder]
    # The source path is never wrapped: a long path must not push it onto its own line.
    out.line(0, f"# Imported from {ctx.src.path}")
    out.comment(0, f"by `tocsin rules import-alertmanager` (Tocsin {__version__}). "
                "Reference: docs/rules.md.")
    out.comment(0, "Routing is Alertmanager's: the route tree, matchers, continue, group_by, "
                "timers, time intervals and inhibit rules are kept (each route says the "
                "Alertmanager line it comes from). Each receiver is an audience of the same "
                "name.")
    if placeholders:
        out.comment(0, f"FILL IN: {len(placeholders)} audience(s) have a placeholder contact "
                    "(change-me+...@example.invalid, a domain that never receives mail): "
                    + ", ".join(placeholders) + ".")
    out.comment(0, "Check with `tocsin rules check FILE`; what was not imported is in the "
                "import report.")
    out.line(0, "")


def import_alertmanager(text: str, source: str = "alertmanager.yml", *,
                        include_template: bool = True) -> ImportResult:
    """Convert an Alertmanager configuration (YAML ``text``) into a Tocsin rule file.

    ``source`` names the input in messages. ``include_template=False`` leaves out the
    minimal ``default`` template (use the one of the shipped rules/templates.yaml).
    Raises :class:`AlertmanagerConfigError` when ``text`` is not a valid configuration.
    """
    src, problems = read_yaml(source, text)
    if src is None or problems:
        raise AlertmanagerConfigError(problems)
    ctx = _Ctx(src)
    data = src.data
    if not isinstance(data, dict):
        ctx.error((), "an Alertmanager configuration is a YAML mapping (route:, receivers:)")
        raise AlertmanagerConfigError(ctx.problems)
    if "apiVersion" in data and "kind" in data:
        ctx.error((), "this is a Kubernetes manifest, not an Alertmanager configuration: "
                  "import the alertmanager.yaml it holds (e.g. under stringData)")
        raise AlertmanagerConfigError(ctx.problems)
    for key in data:
        if key not in _TOP_KEYS:
            ctx.error((key,), f"unknown top-level key '{key}'{did_you_mean(key, _TOP_KEYS)}",
                      key=True)
    receivers = data.get("receivers")
    if not isinstance(receivers, list) or not receivers:
        ctx.error(("receivers",) if "receivers" in data else (),
                  "'receivers' must list at least one receiver")
        receivers = []

    def report(path: Path_, message: str) -> None:
        ctx.not_imported(path, message)

    def error(path: Path_, message: str) -> None:
        ctx.error(path, message)

    ctx.plans = plan_audiences(receivers, report, error)
    intervals = Block()
    _time_intervals(ctx, data, intervals)
    if not isinstance(data.get("route"), dict):
        ctx.error(("route",) if "route" in data else (), "a root 'route' is required")
        raise AlertmanagerConfigError(ctx.problems)
    route = _route(ctx, data["route"], ("route",), None)
    inhibit = Block()
    _inhibit_rules(ctx, data.get("inhibit_rules"), inhibit)
    _unmapped_top_level(ctx, data)
    if ctx.problems:
        raise AlertmanagerConfigError(ctx.problems)

    out = Block()
    _header(ctx, out)
    _audiences(ctx, out)
    out.line(0, "")
    if include_template:
        out.extend(0, template_block(sorted(ctx.channels_used)))
        out.line(0, "")
    out.comment(0, f"The route tree ({ctx.where(('route',))}).")
    out.line(0, "route:")
    out.extend(1, route)
    if intervals.lines:
        out.line(0, "")
        out.extend(0, intervals)
    if inhibit.lines:
        out.line(0, "")
        out.extend(0, inhibit)
    report_items = sorted(ctx.report, key=lambda r: r.line)
    return ImportResult(out.text(), tuple(report_items),
                        {r: p.name for r, p in ctx.plans.items()}, source)
