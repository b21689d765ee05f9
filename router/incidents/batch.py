"""What one intake batch does to incidents, worked out in memory (pure, no I/O).

The store reads the state the batch needs (its groups' open incidents, their copies of
the batch's alerts, the open incidents of other groups holding a resolved alert firing,
the closed incident a late resolve belongs to), hands it to :class:`IntakeBatch`, applies
every event in order with :meth:`IntakeBatch.apply`, then writes what the batch left:
each incident and alert copy once, in its final state, and the timeline in order. What is
written is exactly what applying the events one by one would write.

Times are kept as the store's text (``time_text``, the store's codec) where the batch
compares or copies them verbatim (an alert's ``startsAt``), so that no stored value is
parsed only to be compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from router.incidents.engine import AlertEvent, change_of, effective_status, next_flush
from router.incidents.grouping import incident_id

__all__ = ["AlertCopy", "IntakeBatch", "OpenIncident", "Stray", "Write"]

#: Pending write of one alert copy: insert a new row, rewrite it, or touch a duplicate.
Write = Literal["insert", "update", "touch"]

_CHANGE_KIND: Final = {"new": "alert_joined", "resolved": "alert_resolved",
                       "refired": "alert_refired"}


@dataclass(slots=True)
class OpenIncident:
    """An open incident as the batch's events leave it."""

    id: str
    opened_at: datetime
    flushed_at: datetime | None
    due_at: datetime | None
    started_at: datetime
    version: int = 0  # as read: the UPDATE applies only if it is unchanged
    changes: int = 0  # events that changed it: its version grows by as much
    opened: AlertEvent | None = None  # the event that opened it in this batch


@dataclass(slots=True)
class AlertCopy:
    """An incident's copy of one alert as the batch's events leave it."""

    status: str
    starts_at: str
    sender: str
    write: Write | None = None  # None: the stored row is unchanged so far
    event: AlertEvent | None = None  # the last event that wrote the whole row
    annotations: Mapping[str, str] | None = None  # the last event's (duplicates too)
    ends_at: str | None = None  # likewise



#: An open incident of another group holding an alert firing: (its group key, it, its copy).
Stray = tuple[str, OpenIncident, AlertCopy]


def _json(value: object) -> str:
    """Compact JSON with sorted keys (orjson; the standard encoder for what it refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # e.g. lone surrogates
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class IntakeBatch:
    """The in-memory state of the incidents and alerts one intake batch touches.

    Filled by the store before :meth:`apply`: ``open`` (group key -> its open incident),
    ``copies`` ((incident id, fingerprint) -> the incident's copy of the alert),
    ``strays`` (fingerprint -> open incidents of other groups holding it firing: their
    route lost its identity in a reload, the resolution is theirs too) and ``closed``
    ((fingerprint, group key) -> the latest incident of that group holding the alert, for
    a resolve that comes after its incident closed). After: the same maps in their final
    state, ``timeline`` ((incident id, at, kind, detail JSON), in order) and ``earliest``.
    """

    def __init__(self, now: datetime, *, time_text: Callable[[datetime], str]) -> None:
        self.now = now
        self.time_text = time_text
        self.now_s = time_text(now)
        self.earliest: datetime | None = None
        self.open: dict[str, OpenIncident] = {}
        self.copies: dict[tuple[str, str], AlertCopy] = {}
        self.strays: dict[str, list[Stray]] = {}
        self.closed: dict[tuple[str, str], str] = {}
        self.timeline: list[tuple[str, str, str, str]] = []

    def _detail(self, event: AlertEvent) -> str:
        """The timeline detail of an alert event, as JSON."""
        return _json(_alert_detail(event, self.time_text(event.alert.starts_at)))

    def _text_opt(self, value: datetime | None) -> str | None:
        return None if value is None else self.time_text(value)

    @staticmethod
    def resolved_events(events: Sequence[AlertEvent], now: datetime) -> list[AlertEvent]:
        """The events of ``events`` whose alert is resolved at ``now``."""
        return [event for event in events if effective_status(event.alert, now) == "resolved"]

    def routed_groups(self, events: Sequence[AlertEvent]) -> Mapping[str, set[str]]:
        """Fingerprint -> the groups it routes to in this batch (under these rules)."""
        routed: dict[str, set[str]] = {}
        for event in events:
            routed.setdefault(event.alert.fingerprint, set()).add(event.group_key)
        return routed

    def apply(self, event: AlertEvent) -> None:
        """What one event does, against the state the earlier events of the batch left."""
        alert = event.alert
        status = effective_status(alert, self.now)
        incident = self.open.get(event.group_key)
        copy = None if incident is None else self.copies.get((incident.id, alert.fingerprint))
        if status == "resolved" and self._resolve_strays(event) and incident is None:
            return
        if incident is None:
            if status == "resolved":
                self._late_resolve(event)
                return
            self._open(event, status)
            return
        self._apply_to(incident, event, status, copy)

    def _resolve_strays(self, event: AlertEvent) -> bool:
        """Resolve the alert in the open incidents of other groups that hold it firing.

        They are incidents whose route no longer has the same identity (a reload renamed
        or removed it): the alert now routes to another group, but its resolution still
        belongs to them (docs/rules.md "Route identity"). True when there was one.
        """
        alert = event.alert
        found = False
        for key, stray, stray_copy in self.strays.get(alert.fingerprint, ()):
            incident = self.open.setdefault(key, stray)
            copy = self.copies.setdefault((incident.id, alert.fingerprint), stray_copy)
            if copy.status == "resolved":
                continue  # already resolved earlier in this batch
            found = True
            self._apply_to(incident, replace(event, group_key=key), "resolved", copy)
        return found

    def _apply_to(self, incident: OpenIncident, event: AlertEvent,
                  status: Literal["firing", "resolved"], copy: AlertCopy | None) -> None:
        """Apply ``event`` to the open ``incident`` whose copy of the alert is ``copy``."""
        alert = event.alert
        key = (incident.id, alert.fingerprint)
        starts_at = self.time_text(alert.starts_at)
        change = change_of(None if copy is None else copy.status,
                           copy is not None and copy.starts_at == starts_at, status)
        if change == "duplicate":
            assert copy is not None  # a duplicate is of a known alert
            if copy.write is None:
                copy.write = "touch"
            copy.annotations, copy.ends_at = alert.annotations, self._text_opt(alert.ends_at)
            other = event.sender != copy.sender
            self.timeline.append((incident.id, self.now_s, "duplicate", _json({
                "fingerprint": alert.fingerprint, "status": status, "sender": event.sender,
                "why": ("the same alert state from another sender (HA replica)" if other
                        else "the same alert state received again (retry or redelivery)")})))
            return
        if copy is None:
            self.copies[key] = AlertCopy(status, starts_at, event.sender, "insert", event,
                                         alert.annotations, self._text_opt(alert.ends_at))
        else:
            copy.status, copy.starts_at, copy.event = status, starts_at, event
            copy.annotations, copy.ends_at = alert.annotations, self._text_opt(alert.ends_at)
            if copy.write != "insert":
                copy.write = "update"
        self.timeline.append((incident.id, self.now_s, _CHANGE_KIND[change],
                              self._detail(event)))
        due = next_flush(due_at=incident.due_at, opened_at=incident.opened_at,
                         flushed_at=incident.flushed_at, policy=event.decision.policy,
                         now=self.now)
        incident.due_at = due
        incident.started_at = min(incident.started_at, alert.starts_at)
        incident.changes += 1
        self._planned(due)

    def _open(self, event: AlertEvent, status: str) -> None:
        alert = event.alert
        iid = incident_id(event.group_key, event.intake_id)
        due = next_flush(due_at=None, opened_at=self.now, flushed_at=None,
                         policy=event.decision.policy, now=self.now)
        self.open[event.group_key] = OpenIncident(iid, self.now, None, due, alert.starts_at,
                                               opened=event)
        self.timeline.append((iid, self.now_s, "opened", _json({
            "route_id": event.decision.route_id, "group_labels": dict(event.group_labels)})))
        self.copies[(iid, alert.fingerprint)] = AlertCopy(
            status, self.time_text(alert.starts_at), event.sender, "insert", event,
            alert.annotations, self._text_opt(alert.ends_at))
        self.timeline.append((iid, self.now_s, "alert_joined", self._detail(event)))
        self._planned(due)

    def _late_resolve(self, event: AlertEvent) -> None:
        """A resolved alert with no open incident: note it on the closed one, if any."""
        alert = event.alert
        late = self.closed.get((alert.fingerprint, event.group_key))
        if late is not None:
            self.timeline.append((late, self.now_s, "duplicate", _json({
                "fingerprint": alert.fingerprint, "sender": event.sender,
                "why": "resolved alert for an incident already resolved"})))

    def _planned(self, due: datetime) -> None:
        if self.earliest is None or due < self.earliest:
            self.earliest = due



def _alert_detail(event: AlertEvent, starts_at: str) -> dict[str, Any]:
    labels = event.alert.labels
    return {"fingerprint": event.alert.fingerprint, "alertname": labels.get("alertname", ""),
            "instance": labels.get("instance", ""), "sender": event.sender,
            "starts_at": starts_at}
