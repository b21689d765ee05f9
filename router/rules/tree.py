"""The compiled route tree and its evaluation (Alertmanager semantics).

Evaluation is depth-first, children in order; a matching child without ``continue``
stops its siblings; when no child matches, the node itself is the match. Settings are
inherited at load time, so each node already holds its effective options.

Speed: matchers are compiled at load and sorted cheapest first (equality before regex).
Each node indexes its children by one "key" matcher that can only match known literal
values (``a="x"`` or ``a=~"x|y"``); children keyed only by a positive regex are grouped
per label and screened by one combined alternation (when the alert's value does not
match it, none of them can match). At evaluation, the children that may match are the
unindexed ones, those filed under the alert's value of each key label, and the members
of the screens that pass. Candidates are visited in their original order, so the result
is exactly the naive one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from router.models import IncidentPolicy, RouteDecision
from router.rules.matchers import Matcher, MatchType
from router.rules.regex import Regex, compile_union

__all__ = ["ChildIndex", "MatcherTrace", "RegexScreen", "Route", "SeverityRule", "Trace",
           "evaluate"]


@dataclass(frozen=True, slots=True)
class SeverityRule:
    """Either a fixed severity, or a label looked up through an optional map."""

    fixed: str | None = None
    label: str | None = None
    mapping: Mapping[str, str] | None = None
    default: str = "warning"

    def resolve(self, labels: Mapping[str, str]) -> str:
        """The severity for an alert with ``labels``."""
        if self.fixed is not None:
            return self.fixed
        assert self.label is not None
        value = labels.get(self.label, "")
        if self.mapping is not None:
            return self.mapping.get(value, self.default)
        return value or self.default

    def describe(self) -> str:
        """A one-line human description."""
        if self.fixed is not None:
            return self.fixed
        how = "mapped" if self.mapping is not None else "as is"
        return f"from label '{self.label}' ({how}, default {self.default})"


@dataclass(frozen=True, slots=True)
class RegexScreen:
    """Children keyed by a positive regex on one label, screened by one combined regex.

    ``combined`` is the union of their anchored regexes: when the alert's value does not
    match it, none of ``members`` can match and all are skipped at once.
    """

    label: str
    combined: Regex
    members: tuple[int, ...]


@dataclass(slots=True)
class ChildIndex:
    """Children of a node filed by (key label, value) for fast candidate selection."""

    unindexed: tuple[int, ...]
    by_label: dict[str, dict[str, tuple[int, ...]]]
    screens: tuple[RegexScreen, ...] = ()

    @classmethod
    def build(cls, children: Sequence[Route]) -> ChildIndex:
        """File each child under its first literal-only positive matcher, if any.

        Children without one but with a positive regex are grouped by that regex's label
        into a :class:`RegexScreen`; the others are always checked.
        """
        unindexed: list[int] = []
        by_label: dict[str, dict[str, list[int]]] = {}
        by_regex: dict[str, list[tuple[int, Regex]]] = {}
        for i, child in enumerate(children):
            key = next((m for m in child.matchers if m.is_positive_literal), None)
            if key is not None and key.literals is not None:
                per_value = by_label.setdefault(key.name, {})
                for value in key.literals:
                    per_value.setdefault(value, []).append(i)
                continue
            rx = next((m for m in child.matchers
                       if m.type is MatchType.REGEX and m.regex is not None), None)
            if rx is not None and rx.regex is not None:
                by_regex.setdefault(rx.name, []).append((i, rx.regex))
            else:
                unindexed.append(i)
        screens: list[RegexScreen] = []
        for label, items in by_regex.items():
            if len(items) < 2:  # one regex alone is as cheap as a screen
                unindexed.extend(i for i, _ in items)
                continue
            combined = compile_union([r for _, r in items])
            if combined is None:  # beyond RE2's memory budget: check each on its own
                unindexed.extend(i for i, _ in items)
                continue
            screens.append(RegexScreen(label, combined, tuple(i for i, _ in items)))
        return cls(
            unindexed=tuple(sorted(unindexed)),
            by_label={k: {v: tuple(ix) for v, ix in d.items()} for k, d in by_label.items()},
            screens=tuple(screens),
        )

    def candidates(self, labels: Mapping[str, str]) -> Sequence[int]:
        """Indices of the children that may match, in tree order."""
        hits: list[int] = []
        for name, per_value in self.by_label.items():
            found = per_value.get(labels.get(name, ""))
            if found:
                hits.extend(found)
        for screen in self.screens:
            if screen.combined.matches(labels.get(screen.label, "")):
                hits.extend(screen.members)
        if not hits:
            return self.unindexed
        hits.extend(self.unindexed)
        hits.sort()
        return hits


@dataclass(slots=True)
class Route:
    """A node of the compiled tree with its effective (inherited) settings.

    ``route_id`` is the route's identity: its ``name``, else its matchers path from the
    root (``{}/{service="billing"}``), never its position, so that incidents keyed by it
    survive an edit of the tree. ``key`` is that matchers path (named or not) and
    ``position`` (``root/2``) where the route sits now, for messages only.
    """

    route_id: str
    position: str
    key: str
    name: str | None
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_by_all: bool
    severity: SeverityRule
    audiences: tuple[str, ...]
    channels: Mapping[str, tuple[str, ...]]
    template: str
    owner: str | None
    children: list[Route] = field(default_factory=list)
    # Incident timers, quiet hours, time intervals (router/rules/lifecycle.py).
    policy: IncidentPolicy = field(default_factory=IncidentPolicy)
    fallback: Mapping[str, str] = field(default_factory=dict)  # {channel: fallback channel}
    index: ChildIndex | None = None
    # Where the route is defined (file, line, col) — for explanations and warnings.
    source: tuple[str, int, int] = ("", 0, 0)

    def finish(self) -> None:
        """Sort matchers cheapest first and build the child index (recursively)."""
        order = {MatchType.EQUAL: 0, MatchType.NOT_EQUAL: 1, MatchType.REGEX: 2,
                 MatchType.NOT_REGEX: 3}
        self.matchers = tuple(sorted(self.matchers, key=lambda m: order[m.type]))
        for child in self.children:
            child.finish()
        self.index = ChildIndex.build(self.children) if self.children else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher of this node holds (missing label = empty string)."""
        for m in self.matchers:
            if not m.matches_value(labels.get(m.name, "")):
                return False
        return True

    def channels_for(self, severity: str) -> tuple[str, ...]:
        """Channels for ``severity``, else the ``default`` entry, else none."""
        found = self.channels.get(severity)
        if found is None:
            found = self.channels.get("default", ())
        return found

    def decide(self, labels: Mapping[str, str]) -> RouteDecision:
        """The decision this route makes for an alert it matched."""
        severity = self.severity.resolve(labels)
        return RouteDecision(
            route_id=self.route_id,
            route_name=self.name,
            severity=severity,
            audiences=self.audiences,
            channels=self.channels_for(severity),
            template=self.template,
            group_by=self.group_by,
            group_by_all=self.group_by_all,
            owner=self.owner,
            policy=self.policy,
            fallback=self.fallback,
        )

    def walk(self) -> list[Route]:
        """This node and all descendants, pre-order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True, slots=True)
class MatcherTrace:
    """One matcher checked during an explanation."""

    matcher: str
    label: str
    value: str | None  # None when the label is missing (matched as "")
    ok: bool


@dataclass(slots=True)
class Trace:
    """What happened at one node during an explained evaluation."""

    route: Route
    depth: int
    matched: bool = False
    matchers: list[MatcherTrace] = field(default_factory=list)
    selected: bool = False  # this node is (one of) the final matches
    skipped_reason: str | None = None  # set when the node was not evaluated


Tracer = Callable[[Trace], None]


def evaluate(root: Route, labels: Mapping[str, str], *, indexed: bool = True,
             tracer: Tracer | None = None) -> list[Route]:
    """All matched routes for ``labels``, in order (Alertmanager ``Route.Match``).

    ``indexed=False`` visits every child (the naive reference). ``tracer`` receives one
    Trace per visited or skipped node (used by explanations; it implies the naive walk,
    which gives the same result).
    """
    if tracer is not None:
        return _match_traced(root, labels, tracer, 0)
    if not root.matches(labels):
        return []
    return _match_children(root, labels, indexed)


def _match_children(node: Route, labels: Mapping[str, str], indexed: bool) -> list[Route]:
    found: list[Route] = []
    children = node.children
    if children:
        if indexed and node.index is not None:
            order: Sequence[int] = node.index.candidates(labels)
        else:
            order = range(len(children))
        for i in order:
            child = children[i]
            if not child.matches(labels):
                continue
            sub = _match_children(child, labels, indexed)
            found.extend(sub)
            if sub and not child.continue_:
                break
    if not found:
        found.append(node)
    return found


def _match_traced(node: Route, labels: Mapping[str, str], tracer: Tracer,
                  depth: int) -> list[Route]:
    trace = Trace(route=node, depth=depth)
    ok = True
    for m in node.matchers:
        value = labels.get(m.name)
        res = m.matches_value(value if value is not None else "")
        trace.matchers.append(MatcherTrace(str(m), m.name, value, res))
        ok = ok and res
    trace.matched = ok
    tracer(trace)
    if not ok:
        return []
    found: list[Route] = []
    stopped_by: Route | None = None
    for child in node.children:
        if stopped_by is not None:
            tracer(Trace(route=child, depth=depth + 1, skipped_reason=(
                f"not evaluated: earlier sibling {stopped_by.position} matched "
                "without 'continue: true'")))
            continue
        sub = _match_traced(child, labels, tracer, depth + 1)
        found.extend(sub)
        if sub and not child.continue_:
            stopped_by = child
    if not found:
        found.append(node)
        trace.selected = True
    return found
