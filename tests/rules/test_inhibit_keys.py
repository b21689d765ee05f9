"""The flush's inhibition decision on indexed keys agrees with the reference semantics."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router.rules.inhibit import (
    InhibitRule,
    InhibitSource,
    is_inhibited,
    is_inhibited_by_keys,
    source_keys,
    target_keys,
)
from router.rules.matchers import parse_matcher

RULES = [
    InhibitRule.build([parse_matcher('alertname="Down"')], [parse_matcher('alertname="Slow"')],
                      ["service"]),
    # two-sided: an alert matching both sides only counts sources that match one side
    InhibitRule.build([parse_matcher('severity="critical"')],
                      [parse_matcher('severity=~"critical|warning"')], ["cluster"]),
]

_labels = st.fixed_dictionaries({
    "alertname": st.sampled_from(["Down", "Slow", "Other"]),
    "severity": st.sampled_from(["critical", "warning"]),
    "service": st.sampled_from(["a", "b"]),
    "cluster": st.sampled_from(["x", "y"]),
})


def _index(firing: list[tuple[str, dict[str, str]]]
           ) -> dict[tuple[str, str], tuple[InhibitSource, ...]]:
    """The store's index of firing sources, as the intake writes it."""
    found: dict[tuple[str, str], list[InhibitSource]] = {}
    for fp, labels in firing:
        for key in source_keys(RULES, labels):
            found.setdefault((key.rule_key, key.equal), []).append(
                InhibitSource(fp, key.both))
    return {pair: tuple(items) for pair, items in found.items()}


@settings(max_examples=300, deadline=None)
@given(alerts=st.lists(_labels, min_size=1, max_size=6), pick=st.integers(0, 5))
def test_keyed_decision_equals_reference(alerts: list[dict[str, str]], pick: int) -> None:
    """For any firing set and target, keys + found sources give is_inhibited's answer."""
    firing = [(f"fp{i}", labels) for i, labels in enumerate(alerts)]
    fp, target = firing[pick % len(firing)]
    expected = is_inhibited(RULES, target, fp, firing) is not None
    assert is_inhibited_by_keys(target_keys(RULES, target), fp, _index(firing)) is expected


def test_an_alert_never_inhibits_itself() -> None:
    """A target that is its own only source is not inhibited."""
    labels = {"alertname": "Slow", "severity": "critical", "service": "a", "cluster": "x"}
    assert not is_inhibited_by_keys(target_keys(RULES, labels), "fp0",
                                    _index([("fp0", labels)]))
