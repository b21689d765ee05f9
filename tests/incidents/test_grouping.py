"""Group labels, group keys and incident ids (pure)."""

from __future__ import annotations

from router.incidents.grouping import group_key, group_labels, incident_id
from router.models import RouteDecision


def decision(group_by: tuple[str, ...] = ("alertname",), all_: bool = False,
             route_id: str = "root") -> RouteDecision:
    return RouteDecision(route_id=route_id, route_name=None, severity="warning",
                         audiences=("ops",), channels=("email",), template="default",
                         group_by=group_by, group_by_all=all_)


def test_group_labels_keep_only_present_group_by_labels() -> None:
    """Like Alertmanager, a group_by label the alert lacks is left out."""
    labels = {"alertname": "HostDown", "instance": "a", "dc": "par"}
    assert group_labels(decision(("alertname", "cluster")), labels) == {"alertname": "HostDown"}
    assert group_labels(decision((), all_=True), labels) == dict(sorted(labels.items()))
    assert group_labels(decision(()), labels) == {}


def test_group_key_depends_on_route_and_labels_not_order() -> None:
    """Same route + same labels → same key (any order); another route → another key."""
    a = group_key("root/0", {"alertname": "X", "dc": "par"})
    assert a == group_key("root/0", {"dc": "par", "alertname": "X"})
    assert a != group_key("root/1", {"alertname": "X", "dc": "par"})
    assert a != group_key("root/0", {"alertname": "X", "dc": "lyon"})
    assert len(a) == 16


def test_incident_ids_are_stable_and_distinct_per_opening_intake_row() -> None:
    """An incident's id follows from its group and the intake row that opened it."""
    key = group_key("root", {"alertname": "X"})
    assert incident_id(key, 0) == incident_id(key, 0)
    assert incident_id(key, 0) != incident_id(key, 1)
    assert incident_id(key, 0).startswith("inc-")
