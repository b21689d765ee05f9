"""Grouping: which incident an alert belongs to (Alertmanager's aggregation groups).

The group labels of an alert under a route are its values for the route's ``group_by``
labels (labels the alert lacks are left out, as in Alertmanager), or all its labels for
``group_by: ['...']``. The group key hashes the route id (the route's identity: its name,
else its matchers path, never its position, so a reload that inserts or moves other
routes keeps every open incident's key) with the group labels; an
incident id hashes the group key with the id of the intake row that opened it (unique in
the intake log, so ids never depend on counting rows, and the same intake log replayed
gives the same ids). Pure functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from router.models import RouteDecision

__all__ = ["group_key", "group_labels", "incident_id"]


def group_labels(decision: RouteDecision, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that define the alert's group under ``decision``'s route."""
    if decision.group_by_all:
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(decision.group_by) if name in labels}


def group_key(route_id: str, labels: Mapping[str, str]) -> str:
    """A stable key for (route, group labels): 16 hex digits."""
    parts = [route_id]
    for name in sorted(labels):
        parts.append(f"{name}\x1e{labels[name]}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def incident_id(key: str, intake_id: int) -> str:
    """The id of the incident of group ``key`` opened by intake row ``intake_id``.

    ``inc-`` + 16 hex digits. An intake row opens at most one incident per group, and
    intake ids are never reused, so two incidents never share an id.
    """
    return "inc-" + hashlib.sha256(f"{key}\x1f{intake_id}".encode()).hexdigest()[:16]
