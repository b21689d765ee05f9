"""``tocsin rules diff OLD NEW``: what a rule change does to incidents and real alerts.

Routes whose identity changes (docs/rules.md "Route identity"): a route of OLD whose
identity (its name, else its matchers path) no longer exists in NEW, renamed when NEW has
a route of another identity at the same matchers path, else removed. Its open incidents
stay open and resolve normally, but a re-sent alert opens a new incident under the new
identity (and pages again). With a state database (``--state``), the open incidents whose
route identity is not in NEW are listed too.

With ``--alerts FILE.jsonl``, each alert (Alertmanager alert shape, one JSON object per
line) is evaluated by both rule sets; an alert *changes* when its matched routes,
audiences, channels (per route) or severity differ. Alerts with the same change are
grouped, so a reviewer reads "these 12 alerts move from ops to astreinte" instead of 12
near-identical entries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from router.errors import Problem
from router.models import RouteDecision
from router.rules.ruleset import RuleSet

__all__ = ["AlertLine", "IdentityChange", "OpenIncident", "Outcome", "diff_alerts",
           "format_diff", "format_identity", "open_incidents", "outcome", "read_alerts",
           "route_identity_changes"]

#: Example alerts shown per group of identical changes in text output (unless --all).
EXAMPLES_PER_GROUP = 5


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert of the alerts file: its line number and labels."""

    line: int
    labels: Mapping[str, str]

    def describe(self) -> str:
        """``AlertName{k="v", ...}`` (alertname first, then the other labels sorted)."""
        name = self.labels.get("alertname", "")
        rest = ", ".join(f'{k}="{v}"' for k, v in sorted(self.labels.items())
                         if k != "alertname")
        return f"{name}{{{rest}}}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a rule set decides for one alert, reduced to what a reviewer compares."""

    routes: tuple[str, ...]
    audiences: tuple[str, ...]
    channels: tuple[tuple[str, ...], ...]  # the channels of each matched route, in order
    severity: tuple[str, ...]

    def changes(self, new: Outcome) -> dict[str, tuple[Any, Any]]:
        """Field name → (old, new) for every field that differs."""
        out: dict[str, tuple[Any, Any]] = {}
        for name in ("routes", "audiences", "channels", "severity"):
            a, b = getattr(self, name), getattr(new, name)
            if a != b:
                out[name] = (a, b)
        return out


def _label(d: RouteDecision) -> str:
    return d.route_name or d.route_id


def outcome(rules: RuleSet, labels: Mapping[str, str]) -> Outcome:
    """Evaluate ``labels`` and keep routes, audiences, channels and severity."""
    decisions = rules.evaluate(labels)
    audiences: list[str] = []
    for d in decisions:
        audiences.extend(a for a in d.audiences if a not in audiences)
    return Outcome(
        routes=tuple(_label(d) for d in decisions),
        audiences=tuple(audiences),
        channels=tuple(d.channels for d in decisions),
        severity=tuple(dict.fromkeys(d.severity for d in decisions)),
    )


def read_alerts(path: Path) -> tuple[list[AlertLine], list[Problem]]:
    """Alerts of a JSON-lines file; blank lines and ``#`` comments are skipped.

    A line may be an alert (``{"labels": {...}, ...}``) or a bare label set.
    """
    alerts: list[AlertLine] = []
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem(str(path), 0, 0, f"cannot read alerts file: {exc}")]
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(str(path), n, exc.colno, f"invalid JSON: {exc.msg}"))
            continue
        labels = obj.get("labels", obj) if isinstance(obj, dict) else None
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            problems.append(Problem(str(path), n, 1, "expected an alert object with "
                                    "'labels': {name: string value}"))
            continue
        alerts.append(AlertLine(n, labels))
    return alerts, problems


@dataclass(frozen=True, slots=True)
class ChangeGroup:
    """Alerts whose outcome changed in exactly the same way."""

    old: Outcome
    new: Outcome
    changes: dict[str, tuple[Any, Any]]
    alerts: tuple[AlertLine, ...]


def diff_alerts(old: RuleSet, new: RuleSet,
                alerts: Sequence[AlertLine]) -> tuple[list[ChangeGroup], int]:
    """Groups of changed alerts (largest first) and the number of changed alerts."""
    groups: dict[tuple[Outcome, Outcome], list[AlertLine]] = {}
    for a in alerts:
        before, after = outcome(old, a.labels), outcome(new, a.labels)
        if before != after:
            groups.setdefault((before, after), []).append(a)
    out = [ChangeGroup(o, n, o.changes(n), tuple(items)) for (o, n), items in groups.items()]
    out.sort(key=lambda g: (-len(g.alerts), g.alerts[0].line))
    return out, sum(len(g.alerts) for g in out)


def _fmt(field: str, value: Any) -> str:
    if field == "channels":
        return " | ".join(",".join(chans) or "-" for chans in value)
    return ", ".join(value) or "-"


def _lines(groups: Sequence[ChangeGroup], show_all: bool) -> Iterator[str]:
    for g in groups:
        n = len(g.alerts)
        yield f"{n} alert(s):"
        for field, (a, b) in g.changes.items():
            yield f"  {field + ':':11} {_fmt(field, a)}  →  {_fmt(field, b)}"
        shown = g.alerts if show_all else g.alerts[:EXAMPLES_PER_GROUP]
        for alert in shown:
            yield f"    line {alert.line}: {alert.describe()}"
        if len(shown) < n:
            yield f"    ... and {n - len(shown)} more (--all lists them)"
        yield ""


def format_diff(groups: Sequence[ChangeGroup], changed: int, total: int, out: TextIO,
                *, fmt: str = "text", show_all: bool = False,
                extra: Mapping[str, Any] | None = None) -> None:
    """Write the diff as text (grouped) or as one JSON document (with ``extra``'s keys)."""
    if fmt == "json":
        doc = {
            **(extra or {}),
            "alerts": total,
            "changed": changed,
            "groups": [{
                "count": len(g.alerts),
                "changes": {k: {"old": _jsonable(a), "new": _jsonable(b)}
                            for k, (a, b) in g.changes.items()},
                "alerts": [{"line": a.line, "labels": dict(a.labels)} for a in g.alerts],
            } for g in groups],
        }
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    for line in _lines(groups, show_all):
        out.write(line + "\n")
    out.write(f"{changed} of {total} alert(s) change route, audience, channel or severity\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


# ------------------------------------------------------------------ route identities


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A route of OLD whose identity is not in NEW: renamed (``new`` set) or removed."""

    old: str
    new: str | None  # the identity of NEW's route at the same matchers path, if any
    source: str  # where OLD defines it (file:line)


def route_identity_changes(old: RuleSet, new: RuleSet) -> list[IdentityChange]:
    """OLD's routes whose identity disappears in NEW, in OLD's tree order."""
    by_key = {r.key: r for r in new.routes.values()}
    out: list[IdentityChange] = []
    for route in old.routes.values():
        if route.route_id in new.routes:
            continue
        twin = by_key.get(route.key)
        renamed = twin.route_id if twin is not None and twin.route_id not in old.routes else None
        out.append(IdentityChange(route.route_id, renamed,
                                  f"{route.source[0]}:{route.source[1]}"))
    return out


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An open incident of the state database whose route identity is not in NEW."""

    id: str
    route_id: str
    group_labels: Mapping[str, str]
    opened_at: str
    becomes: str  # what happens to its route: "renamed to X", "removed", ...


def open_incidents(state_path: str, new: RuleSet,
                   changes: Sequence[IdentityChange]) -> list[OpenIncident]:
    """The open incidents of the database at ``state_path`` (read only) whose route
    identity is not one of NEW's. Raises StoreError when it cannot be read."""
    from router.store.sqlite.tools import read_open_incidents  # the CLI's only store read

    fate = {c.old: f"renamed to {c.new}" if c.new else "removed" for c in changes}
    found: list[OpenIncident] = []
    for item in read_open_incidents(state_path):
        if item.route_id in new.routes:
            continue
        becomes = fate.get(item.route_id, "not a route of OLD either"
                           if not _POSITION.fullmatch(item.route_id) else
                           "opened under a route position (before route identities)")
        found.append(OpenIncident(item.id, item.route_id, item.group_labels,
                                  item.opened_at.isoformat(), becomes))
    found.sort(key=lambda i: (i.opened_at, i.id))
    return found


#: A route position (``root/1/0``): the route ids of incidents opened before identities.
_POSITION = re.compile(r"root(?:/\d+)*")


def format_identity(changes: Sequence[IdentityChange],
                    incidents: Sequence[OpenIncident] | None, out: TextIO) -> None:
    """The two identity sections, as text."""
    out.write(f"Routes whose identity changes ({len(changes)}):\n")
    for c in changes:
        what = f"renamed to {c.new}" if c.new else "removed"
        out.write(f"  {c.old} ({c.source}): {what}\n")
    if not changes:
        out.write("  none\n")
    out.write("\n")
    if incidents is None:
        return
    out.write(f"Open incidents whose route identity changes ({len(incidents)}):\n")
    for i in incidents:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(i.group_labels.items()))
        out.write(f"  {i.id} route {i.route_id} {{{labels}}} opened {i.opened_at}: "
                  f"{i.becomes}; stays open and resolves normally, a re-sent alert opens a "
                  "new incident\n")
    if not incidents:
        out.write("  none\n")
    out.write("\n")
