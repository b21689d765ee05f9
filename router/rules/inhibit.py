"""Inhibition rules with Alertmanager's semantics (``inhibit_rules``).

A *target* alert is inhibited while a firing *source* alert exists whose labels match the
source matchers and which has the same values as the target for every ``equal`` label
(a missing label is the empty string on both sides). An alert never inhibits itself,
and, as in Alertmanager, when the target also matches the source matchers, only sources
that do *not* match the target matchers count (two alerts matching both sides do not
inhibit each other).

The rule set compiles each rule once; :func:`source_keys` and :func:`target_keys` turn an
alert's labels into small hashable keys that the store can index, so finding the firing
sources for a target is one indexed lookup, not a scan of every alert. The store only
finds them; :func:`is_inhibited_by_keys` decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from router.rules.matchers import Matcher
from router.strict import Strict

__all__ = [
    "InhibitRule",
    "InhibitRuleModel",
    "InhibitSource",
    "SourceKey",
    "TargetKey",
    "is_inhibited",
    "is_inhibited_by_keys",
    "source_keys",
    "target_keys",
]


class InhibitRuleModel(Strict):
    """One ``inhibit_rules`` entry, as in alertmanager.yml (old and new matcher styles)."""

    source_matchers: list[str] | None = None
    target_matchers: list[str] | None = None
    source_match: dict[str, str] | None = None
    source_match_re: dict[str, str] | None = None
    target_match: dict[str, str] | None = None
    target_match_re: dict[str, str] | None = None
    equal: list[str] | None = None


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """A compiled inhibition rule; ``key`` identifies it across reloads (its content)."""

    key: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def build(cls, source: Sequence[Matcher], target: Sequence[Matcher],
              equal: Sequence[str]) -> InhibitRule:
        """Compile a rule; its key is a hash of its matchers and equal labels."""
        text = "\x1f".join([*sorted(map(str, source)), "\x1e", *sorted(map(str, target)),
                            "\x1e", *sorted(equal)])
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        return cls(key=key, source=tuple(source), target=tuple(target),
                   equal=tuple(sorted(set(equal))))

    def source_matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can inhibit others under this rule."""
        return all(m.matches(labels) for m in self.source)

    def target_matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` can be inhibited under this rule."""
        return all(m.matches(labels) for m in self.target)

    def equal_hash(self, labels: Mapping[str, str]) -> str:
        """A hash of the ``equal`` labels' values (missing = empty)."""
        text = "\x1f".join(f"{name}\x1e{labels.get(name, '')}" for name in self.equal)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SourceKey:
    """A firing alert may inhibit targets of rule ``rule_key`` with equal hash ``equal``.

    ``both``: the source also matches the rule's target matchers.
    """

    rule_key: str
    equal: str
    both: bool


@dataclass(frozen=True, slots=True)
class TargetKey:
    """A target alert looks for sources of rule ``rule_key`` with equal hash ``equal``.

    ``exclude_both``: the target matches the source matchers too, so sources that match
    both sides do not count.
    """

    rule_key: str
    equal: str
    exclude_both: bool


def source_keys(rules: Sequence[InhibitRule], labels: Mapping[str, str]) -> list[SourceKey]:
    """The rules under which an alert with ``labels`` is a source."""
    return [SourceKey(r.key, r.equal_hash(labels), r.target_matches(labels))
            for r in rules if r.source_matches(labels)]


def target_keys(rules: Sequence[InhibitRule], labels: Mapping[str, str]) -> list[TargetKey]:
    """The rules under which an alert with ``labels`` may be inhibited."""
    return [TargetKey(r.key, r.equal_hash(labels), r.source_matches(labels))
            for r in rules if r.target_matches(labels)]


def is_inhibited(
    rules: Sequence[InhibitRule],
    target: Mapping[str, str],
    target_fingerprint: str,
    firing: Sequence[tuple[str, Mapping[str, str]]],
) -> InhibitRule | None:
    """The rule that inhibits ``target`` given the ``(fingerprint, labels)`` firing now.

    The reference implementation of the semantics; the flush decides with
    :func:`is_inhibited_by_keys` on the store's index of keys, which agrees with it.
    """
    for rule in rules:
        if not rule.target_matches(target):
            continue
        two_sided = rule.source_matches(target)
        wanted = rule.equal_hash(target)
        for fp, labels in firing:
            if fp == target_fingerprint or not rule.source_matches(labels):
                continue
            if two_sided and rule.target_matches(labels):
                continue
            if rule.equal_hash(labels) == wanted:
                return rule
    return None


@dataclass(frozen=True, slots=True)
class InhibitSource:
    """A firing alert recorded as a source under one ``(rule_key, equal)`` key."""

    fingerprint: str
    both: bool  # it also matches the rule's target matchers (SourceKey.both)


def is_inhibited_by_keys(
    keys: Sequence[TargetKey],
    target_fingerprint: str,
    sources: Mapping[tuple[str, str], Sequence[InhibitSource]],
) -> bool:
    """:func:`is_inhibited` on the indexed keys: the decision the flush uses.

    ``keys``: the target's :func:`target_keys`; ``sources``: the firing sources found
    under each ``(rule_key, equal)`` (the store's index of :func:`source_keys`). An alert
    never inhibits itself; a target that matches the source matchers too is inhibited only
    by sources that do not match both sides. Two sources of each kind (``both`` or not)
    per key are enough to decide: the target itself is at most one of them.
    """
    for key in keys:
        for source in sources.get((key.rule_key, key.equal), ()):
            if source.fingerprint == target_fingerprint:
                continue
            if key.exclude_both and source.both:
                continue
            return True
    return False
