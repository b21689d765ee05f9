"""The notices of one incident at one instant: a pure function of its state and the rules.

:func:`plan_flush` is THE planner: the scheduler runs it when an incident's timer fires,
and ``tocsin rules test`` (files and ``--labels``) runs the same scheduler on a fake
clock (:mod:`router.authoring.rehearsal`), so a rule test sees the template context,
idempotency keys (:func:`notice_key`) and render-failure handling the service uses. For every
recipient (the contacts of the route's audiences, plus anyone told before) it asks the
dedup decision (:func:`router.incidents.dedup.needs_notice`) whether a notice is due,
picks the phase, applies quiet hours (hold until the window ends, never drop; a newer
notice replaces a held one; a resolution during the hold becomes one ``summary``),
follow-ups and storm control, renders the message per channel, and returns every
change for the store to apply in one transaction — deliveries, notification-log rows,
held deliveries to cancel, timeline events, the incident's next timer.

Resolved notices and every later notice go to the channels (and addresses) of the
recipient's first notice: everyone who was told that something is wrong is told it is
over, the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from router.incidents.dedup import NotifiedEntry, Reason, needs_notice
from router.incidents.engine import effective_status
from router.incidents.state import (
    HeldNotice,
    Incident,
    IncidentAlert,
    IncidentState,
    RecipientLog,
    TimelineEvent,
)
from router.masking import mask_address
from router.models import Alert, Contact, NewDelivery, Phase, RenderedMessage, RouteDecision
from router.rules import RenderError
from router.rules.incident_rules import IncidentRules
from router.rules.quiet import quiet_until, quiet_verdict
from router.rules.view import AlertList, IncidentView, StormItem, eta_and_notes, incident_view

__all__ = [
    "AudienceView",
    "FlushResult",
    "FlushRules",
    "PlannedNotice",
    "alert_of",
    "failure_reason",
    "follow_up_due",
    "muted",
    "notice_key",
    "plan_flush",
    "plan_storm",
    "quiet_until",
    "recipient_address",
]

_log = structlog.get_logger(__name__)


class AudienceView(Protocol):
    """What the planner needs of an audience."""

    @property
    def contacts(self) -> Sequence[Contact]: ...


#: How to address a contact on each channel (None: the contact has no such address).
_ADDRESS_OF: Mapping[str, Callable[[Contact], str | None]] = {
    "email": lambda contact: contact.email,
    "sms": lambda contact: contact.phone,  # E.164, normalised at load
    "topic": lambda contact: contact.topic,  # an SNS topic ARN
    # Web Push goes to every browser subscription of the contact (looked up at send
    # time); a topic is not a person and has no browser.
    "push": lambda contact: contact.id if contact.topic is None else None,
}


def recipient_address(contact: Contact, channel: str) -> str | None:
    """The contact's address on ``channel``, or None if it cannot receive it."""
    address_of = _ADDRESS_OF.get(channel)
    return None if address_of is None else address_of(contact)


class FlushRules(Protocol):
    """What a flush needs of the rule set (``router.rules.RuleSet`` satisfies it)."""

    @property
    def audiences(self) -> Mapping[str, AudienceView]: ...

    @property
    def incident(self) -> IncidentRules: ...

    def render(
        self, decision: RouteDecision, alert: Alert, contact: Contact, channel: str,
        phase: Phase, meta: Mapping[str, str], *, incident: IncidentView | None = None,
        storm: tuple[StormItem, ...] = (),
    ) -> RenderedMessage: ...


@dataclass(frozen=True, slots=True)
class PlannedNotice:
    """A delivery to insert; ``held_until`` set when quiet hours hold it."""

    audience: str
    contact_id: str
    delivery: NewDelivery
    held_until: datetime | None = None


@dataclass(slots=True)
class FlushResult:
    """Everything one flush changes (applied atomically by the store)."""

    notices: list[PlannedNotice] = field(default_factory=list)
    logs: list[RecipientLog] = field(default_factory=list)
    cancel: list[int] = field(default_factory=list)
    events: list[TimelineEvent] = field(default_factory=list)
    alert_status: dict[str, str] = field(default_factory=dict)  # fp → new status
    inhibited: dict[str, bool] = field(default_factory=dict)  # fp → new flag
    state: IncidentState = "open"
    resolved_at: datetime | None = None
    due_at: datetime | None = None
    first_notice_at: datetime | None = None
    follow_ups: int = 0
    storm_counted: list[str] = field(default_factory=list)  # audiences: first notice sent
    storm_folded: list[str] = field(default_factory=list)  # audiences: folded into a storm
    #: Per-item failures isolated by this flush, ``(stage, reason)`` with stage ``plan`` or
    #: ``render`` (counted in ``tocsin_pipeline_item_failures_total`` once committed).
    failures: list[tuple[str, str]] = field(default_factory=list)


def notice_key(incident_id: str, audience: str, contact_id: str, channel: str, address: str,
               phase: str, seq: int) -> str:
    """The idempotency key of one notice (a replayed flush gives the same keys)."""
    parts = (incident_id, audience, contact_id, channel, address, phase, str(seq))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def muted(rules: IncidentRules, decision: RouteDecision, now: datetime) -> str | None:
    """The reason the route sends nothing now (a mute interval, or outside active ones)."""
    policy = decision.policy
    for name in policy.mute_time_intervals:
        interval = rules.time_intervals.get(name)
        if interval is not None and interval.contains(now):
            return f"mute_time_intervals: {name}"
    if policy.active_time_intervals:
        active = [rules.time_intervals[n] for n in policy.active_time_intervals
                  if n in rules.time_intervals]
        if active and not any(i.contains(now) for i in active):
            return "outside active_time_intervals: " + ", ".join(policy.active_time_intervals)
    return None


def follow_up_due(incident: Incident, eta: datetime | None) -> datetime | None:
    """When the next follow-up is due (None: no more follow-ups)."""
    policy = incident.decision.policy
    if (incident.state != "open" or incident.first_notice_at is None
            or incident.follow_ups >= policy.max_follow_ups):
        return None
    after = policy.follow_up_after_s
    try:
        if eta is not None:
            step = timedelta(seconds=after) if after else eta - incident.started_at
            if step <= timedelta(0):
                return eta if incident.follow_ups == 0 else None
            return eta + step * incident.follow_ups
        if after:
            return incident.started_at + timedelta(seconds=after) * (incident.follow_ups + 1)
    except OverflowError:  # a start time at the end of the calendar (untrusted startsAt)
        return None
    return None


def alert_of(item: IncidentAlert, status: str | None = None) -> Alert:
    """The :class:`~router.models.Alert` of an incident alert row."""
    return Alert(labels=item.labels, annotations=item.annotations,
                 status="resolved" if (status or item.status) == "resolved" else "firing",
                 starts_at=item.starts_at, ends_at=item.ends_at,
                 generator_url=item.generator_url, fingerprint=item.fingerprint)


@dataclass(frozen=True, slots=True)
class _Recipient:
    audience: str
    contact: Contact
    log: RecipientLog | None


def _recipients(incident: Incident, rules: FlushRules,
                logs: Mapping[tuple[str, str], RecipientLog]) -> list[_Recipient]:
    out: list[_Recipient] = []
    seen: set[tuple[str, str]] = set()
    for audience in incident.decision.audiences:
        found = rules.audiences.get(audience)
        if found is None:
            continue
        for contact in found.contacts:
            key = (audience, contact.id)
            if key in seen:
                continue
            seen.add(key)
            out.append(_Recipient(audience, contact, logs.get(key)))
    for key, log in sorted(logs.items()):
        if key in seen:
            continue
        # Told before but no longer in the audience: still told how it ends.
        locale = log.channels[0][2] if log.channels else "en"
        out.append(_Recipient(key[0], Contact(id=key[1], name=key[1], locale=locale), log))
    return out


def plan_flush(
    incident: Incident,
    alerts: Sequence[IncidentAlert],
    logs: Mapping[tuple[str, str], RecipientLog],
    inhibited: Mapping[str, bool],
    rules: FlushRules,
    now: datetime,
    *,
    storm_recent: Mapping[str, int] | None = None,
) -> FlushResult:
    """The notices due for ``incident`` at ``now`` (see the module docstring).

    ``inhibited``: fingerprint → whether a firing source inhibits it now.
    ``storm_recent``: audience → first notices sent within the storm window.
    """
    decision = incident.decision
    result = FlushResult(state=incident.state, first_notice_at=incident.first_notice_at,
                         follow_ups=incident.follow_ups)

    statuses: dict[str, str] = {}
    for item in alerts:
        status = item.status
        if status == "firing" and effective_status(alert_of(item), now) == "resolved":
            status = "resolved"
            result.alert_status[item.fingerprint] = status
            result.events.append(TimelineEvent(now, "alert_expired",
                                               {"fingerprint": item.fingerprint}))
        statuses[item.fingerprint] = status
        flag = status == "firing" and inhibited.get(item.fingerprint, False)
        if flag != item.inhibited:
            result.inhibited[item.fingerprint] = flag
            result.events.append(TimelineEvent(
                now, "alert_inhibited" if flag else "alert_uninhibited",
                {"fingerprint": item.fingerprint, "alertname": item.labels.get("alertname", "")}))
    firing_all = {fp for fp, s in statuses.items() if s == "firing"}
    inhibited_now = {fp for fp in firing_all if inhibited.get(fp, False)}
    firing = frozenset(firing_all - inhibited_now)
    resolved = frozenset(fp for fp, s in statuses.items() if s == "resolved")

    if not firing_all:
        result.state = "resolved"
        ends = [a.ends_at for a in alerts if a.ends_at is not None and a.ends_at <= now]
        result.resolved_at = max(ends) if ends else now
        result.events.append(TimelineEvent(now, "resolved", {"alerts": len(alerts)}))

    shown = [a for a in alerts if a.fingerprint not in inhibited_now]
    view_alerts = [alert_of(a, statuses[a.fingerprint]) for a in shown]
    owner = decision.owner or _owner_of(view_alerts)
    base_view = incident_view(
        incident_id=incident.id, state=result.state, alerts=view_alerts,
        group_labels=incident.group_labels, started_at=incident.started_at,
        resolved_at=result.resolved_at, now=now, owner=owner)
    representative = _representative(view_alerts)
    if base_view.notes and base_view.notes != _notes_noted(incident, shown, view_alerts):
        result.events.append(TimelineEvent(now, "value_ignored", {"notes": list(base_view.notes)}))

    mute_reason = muted(rules.incident, decision, now)
    follow_at = follow_up_due(replace(incident, state=result.state), base_view.eta)
    follow_now = follow_at is not None and follow_at <= now
    if mute_reason is not None:
        result.events.append(TimelineEvent(now, "muted", {"reason": mute_reason}))
    elif representative is not None and not (firing_all and not firing):
        _plan_recipients(incident, rules, logs, firing, resolved, base_view, representative,
                         follow_now, now, result, storm_recent or {})
    if follow_now and mute_reason is None and result.state == "open":
        result.follow_ups += 1
        result.events.append(TimelineEvent(now, "follow_up", {"number": result.follow_ups}))
    result.due_at = _next_due(incident, result, logs, alerts, statuses, base_view.eta, now,
                              muted_now=mute_reason is not None)
    return result


def _notes_noted(incident: Incident, shown: Sequence[IncidentAlert],
                 view_alerts: Sequence[Alert]) -> tuple[str, ...]:
    """The notes the previous flush saw, so put on the timeline then: those of the alerts
    first seen before it (none before the first flush; an alert first seen at the very
    instant of that flush counts as new, so its note is never missed). A ``value_ignored``
    event is added only when the notes differ from these: once per change, not at every
    flush.

    An annotation changed since on an alert already seen is read as it is now (the rows
    keep the last one received), so such a change alone adds no event; ``incident.notes``
    in the messages stays current.
    """
    seen = incident.flushed_at
    if seen is None:
        return ()
    before = sorted((alert for row, alert in zip(shown, view_alerts, strict=True)
                     if row.first_seen_at < seen),
                    key=lambda a: (a.starts_at, a.fingerprint))
    return eta_and_notes(before, incident.started_at)[1]


def _owner_of(alerts: Sequence[Alert]) -> str:
    for alert in alerts:
        for source in (alert.labels, alert.annotations):
            for key in ("owner", "responsible"):
                if source.get(key):
                    return source[key]
    return ""


def _representative(alerts: Sequence[Alert]) -> Alert | None:
    firing = sorted((a for a in alerts if a.status == "firing"),
                    key=lambda a: (a.starts_at, a.fingerprint))
    if firing:
        return firing[0]
    done = sorted(alerts, key=lambda a: (a.ends_at or a.starts_at, a.fingerprint))
    return done[-1] if done else None


def _plan_recipients(
    incident: Incident, rules: FlushRules, logs: Mapping[tuple[str, str], RecipientLog],
    firing: frozenset[str], resolved: frozenset[str], base_view: IncidentView,
    representative: Alert, follow_now: bool, now: datetime, result: FlushResult,
    storm_recent: Mapping[str, int],
) -> None:
    counts: dict[tuple[str, str, bool], int] = {}
    # (channel, address) → the recipient whose notices use it: a person in two audiences
    # of the route (or two contacts sharing an address) is told once.
    taken: dict[tuple[str, str], tuple[str, str]] = {}
    for key, log in sorted(logs.items()):
        for channel, address, _locale in log.channels:
            taken.setdefault((channel, address), key)
    for rcpt in _recipients(incident, rules, logs):
        # One recipient's failure (a bug, a value out of range) is theirs alone: it becomes
        # a dead letter with the reason and the other recipients are planned as usual.
        mark = (len(result.notices), len(result.logs), len(result.cancel),
                len(result.storm_counted), len(result.storm_folded), len(result.failures),
                result.first_notice_at)
        try:
            _plan_recipient(incident, rules, rcpt, firing, resolved, base_view,
                            representative, follow_now, now, result, storm_recent, counts,
                            taken)
        except Exception as exc:  # noqa: BLE001 - recorded on the incident, counted, logged
            (n_notices, n_logs, n_cancel, n_counted, n_folded, n_failures,
             result.first_notice_at) = mark
            del result.notices[n_notices:], result.logs[n_logs:], result.cancel[n_cancel:]
            del result.storm_counted[n_counted:], result.storm_folded[n_folded:]
            del result.failures[n_failures:]
            _plan_failed(incident, rcpt, representative, exc, now, result)
    for (phase_name, audience, held), n in sorted(counts.items()):
        kind = {"dropped": "notice_dropped", "storm": "storm_folded"}.get(
            phase_name, "notice_deferred" if held else "notice_planned")
        detail: dict[str, Any] = {"phase": phase_name, "audience": audience, "recipients": n}
        result.events.append(TimelineEvent(now, kind, detail))


def _plan_recipient(
    incident: Incident, rules: FlushRules, rcpt: _Recipient, firing: frozenset[str],
    resolved: frozenset[str], base_view: IncidentView, representative: Alert,
    follow_now: bool, now: datetime, result: FlushResult, storm_recent: Mapping[str, int],
    counts: dict[tuple[str, str, bool], int], taken: dict[tuple[str, str], tuple[str, str]],
) -> None:
    """Plan one recipient's notice (see :func:`_plan_recipients`)."""
    decision = incident.decision
    policy = decision.policy
    storm = rules.incident.storm_control
    log = rcpt.log
    entry = NotifiedEntry(log.firing, log.resolved, log.notified_at) if log else None
    reason: Reason | None = needs_notice(entry, firing, resolved,
                                         policy.repeat_interval_s, now)
    cancellable = [h for h in (log.held if log else ()) if h.cancellable]
    announced = log.announced if log else False
    phase: Phase | None
    if reason is None and follow_now and announced and firing:
        phase = "follow_up"
    elif reason is None:
        return
    else:
        phase = _phase(reason, announced)
    # A newer notice replaces the notices still held by quiet hours.
    if cancellable:
        result.cancel.extend(h.delivery_id for h in cancellable)
        if any(h.phase in ("firing", "storm") for h in cancellable):
            announced = False
        phase = _collapse(phase, announced, cancellable, firing, policy)
    kept = tuple(h for h in (log.held if log else ()) if not h.cancellable)
    if phase is None:  # dropped by `on_resolved_during_quiet_hours: drop`
        result.logs.append(_log_entry(rcpt, log, firing, resolved, now, announced, kept,
                                      bump=False))
        counts[("dropped", rcpt.audience, False)] = counts.get(
            ("dropped", rcpt.audience, False), 0) + 1
        return
    if phase == "firing" and storm is not None and not announced:
        recent = storm_recent.get(rcpt.audience, 0)
        if recent >= storm.max_incidents:
            # Folded into the audience's storm summary: told there, not one by one.
            if rcpt.audience not in result.storm_folded:
                result.storm_folded.append(rcpt.audience)
            channels = _first_channels(rcpt.contact, decision)
            result.logs.append(_log_entry(rcpt, log, firing, resolved, now, True, kept,
                                          channels=channels, bump=False))
            counts[("storm", rcpt.audience, False)] = counts.get(
                ("storm", rcpt.audience, False), 0) + 1
            return
        if rcpt.audience not in result.storm_counted:
            result.storm_counted.append(rcpt.audience)
    # The one quiet-hours verdict (router/rules/quiet.py), shared with explanations
    # and rule tests.
    held_until = quiet_verdict(rules.incident, policy, decision.severity, rcpt.contact,
                               now).held_until
    me = (rcpt.audience, rcpt.contact.id)
    channels = (tuple(c for c in _first_channels(rcpt.contact, decision)
                      if taken.setdefault((c[0], c[1]), me) == me)
                if phase == "firing" or log is None or not log.channels else log.channels)
    if not channels:
        return
    seq = (log.seq if log else 0) + 1
    new = firing - (log.firing if log else frozenset())
    # New alerts are firing ones: taken from the complete ``firing`` list (``alerts``
    # is capped at MAX_LISTED_ALERTS), in the same order.
    view = replace(base_view, new=AlertList(a for a in base_view.firing
                                            if a.fingerprint in new),
                   follow_up=result.follow_ups + 1 if phase == "follow_up" else 0)
    for channel, address, _locale in channels:
        delivery = _render(incident, rules, rcpt, representative, view, phase, channel,
                           address, seq, result.failures)
        result.notices.append(PlannedNotice(rcpt.audience, rcpt.contact.id, delivery,
                                            held_until))
    if phase == "firing" and result.first_notice_at is None:
        result.first_notice_at = now
    result.logs.append(_log_entry(rcpt, log, firing, resolved, now,
                                  announced or phase in ("firing", "storm"), kept,
                                  channels=channels, seq=seq))
    key = (phase, rcpt.audience, held_until is not None)
    counts[key] = counts.get(key, 0) + 1


def _phase(reason: Reason, announced: bool) -> Phase:
    if not announced:
        return "firing"
    if reason == "all_resolved":
        return "resolved"
    return "update"


def _collapse(phase: Phase | None, announced: bool, cancelled: Sequence[HeldNotice],
              firing: frozenset[str], policy: Any) -> Phase | None:
    """The phase that replaces held notices (see the module docstring)."""
    if announced:
        return phase
    if firing:
        return "firing"  # the first notice, with today's state
    # It fired and resolved while the recipient's first notice was held.
    return None if policy.resolved_during_quiet_hours == "drop" else "summary"


def _first_channels(contact: Contact, decision: RouteDecision) -> tuple[tuple[str, str, str],
                                                                       ...]:
    out: list[tuple[str, str, str]] = []
    for channel in decision.channels:
        address = recipient_address(contact, channel)
        if address is None:
            _log.warning("incident.contact_unreachable", contact_id=contact.id,
                         channel=channel)
            continue
        out.append((channel, address, contact.locale))
    return tuple(out)


def _log_entry(rcpt: _Recipient, log: RecipientLog | None, firing: frozenset[str],
               resolved: frozenset[str], now: datetime, announced: bool,
               held: tuple[HeldNotice, ...], *, channels: tuple[tuple[str, str, str], ...] = (),
               seq: int | None = None, bump: bool = True) -> RecipientLog:
    return RecipientLog(
        audience=rcpt.audience, contact_id=rcpt.contact.id, firing=firing, resolved=resolved,
        notified_at=now,
        seq=seq if seq is not None else (log.seq if log else 0) + (1 if bump else 0),
        channels=channels or (log.channels if log else ()),
        announced=announced, held=held)


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of a pipeline failure: the exception's class name (bounded)."""
    return type(exc).__name__[:64]


def _plan_failed(incident: Incident, rcpt: _Recipient, alert: Alert, exc: Exception,
                 now: datetime, result: FlushResult) -> None:
    """Record a recipient whose planning raised: a dead letter per channel, the reason on
    the timeline. Its notification log is left as it was: the next flush tries again
    (with the same idempotency keys, so no second dead letter for the same notice)."""
    decision = incident.decision
    reason = failure_reason(exc)
    error = f"planning the notice failed: {reason}: {exc}"[:500]
    result.failures.append(("plan", reason))
    result.events.append(TimelineEvent(now, "notice_failed", {
        "stage": "plan", "audience": rcpt.audience, "contact_id": rcpt.contact.id,
        "reason": reason, "error": error}))
    _log.error("incident.plan_failed", incident=incident.id, audience=rcpt.audience,
               contact_id=rcpt.contact.id, reason=reason, error=str(exc)[:200])
    log = rcpt.log
    phase: Phase = "update" if log is not None and log.announced else "firing"
    seq = (log.seq if log else 0) + 1
    try:
        channels = _first_channels(rcpt.contact, decision)
    except Exception:  # noqa: BLE001 - the timeline event above already says it
        return
    for channel, address, _locale in channels:
        result.notices.append(PlannedNotice(rcpt.audience, rcpt.contact.id, NewDelivery(
            idempotency_key=notice_key(incident.id, rcpt.audience, rcpt.contact.id, channel,
                                       address, "plan_failed:" + phase, seq),
            incident_key=incident.id, fingerprint=alert.fingerprint,
            route_id=decision.route_id, phase=phase, channel=channel, recipient=address,
            contact_id=rcpt.contact.id, audience=rcpt.audience, severity=decision.severity,
            locale=rcpt.contact.locale,
            message=RenderedMessage(
                subject=f"[plan failed] {alert.labels.get('alertname', '')}", text=""),
            failed_reason=error, dead_letter_reason="plan")))


def _render(incident: Incident, rules: FlushRules, rcpt: _Recipient, alert: Alert,
            view: IncidentView, phase: Phase, channel: str, address: str,
            seq: int, failures: list[tuple[str, str]] | None = None) -> NewDelivery:
    decision = incident.decision
    failed_reason: str | None = None
    try:
        message = rules.render(decision, alert, rcpt.contact, channel, phase, incident.meta,
                               incident=view)
    except Exception as exc:  # noqa: BLE001 - a RenderError, or a bug: a dead letter either way
        reason = "RenderError" if isinstance(exc, RenderError) else failure_reason(exc)
        failed_reason = f"template '{decision.template}' failed to render for {channel}: {exc}"
        if not isinstance(exc, RenderError):
            failed_reason = f"{failed_reason} ({reason})"
        failed_reason = failed_reason[:1000]
        if failures is not None:
            failures.append(("render", reason))
        message = RenderedMessage(subject=f"[render failed] {alert.labels.get('alertname', '')}",
                                  text="")
        _log.error("incident.render_failed", error=str(exc)[:500], reason=reason,
                   template=decision.template, channel=channel,
                   recipient=mask_address(address), incident=incident.id)
    delivery = NewDelivery(
        idempotency_key=notice_key(incident.id, rcpt.audience, rcpt.contact.id, channel,
                                   address, phase, seq),
        incident_key=incident.id,
        fingerprint=alert.fingerprint,
        route_id=decision.route_id,
        phase=phase,
        channel=channel,
        recipient=address,
        contact_id=rcpt.contact.id,
        audience=rcpt.audience,
        severity=decision.severity,
        locale=rcpt.contact.locale,
        message=message,
        failed_reason=failed_reason,
    )
    # Route `fallback: {sms: email}`: the same notice on the fallback channel, planned
    # with it and sent only if this delivery fails permanently (router/store/sqlite/outcomes.py).
    backup = decision.fallback.get(channel)
    backup_address = recipient_address(rcpt.contact, backup) if backup else None
    if backup is None or backup_address is None or backup == channel:
        return delivery
    fallback = _render(incident, rules, rcpt, alert, view, phase, backup, backup_address, seq,
                       failures)
    return replace(delivery, fallback=replace(fallback, fallback=None))


def _next_due(incident: Incident, result: FlushResult,
              prior: Mapping[tuple[str, str], RecipientLog], alerts: Sequence[IncidentAlert],
              statuses: Mapping[str, str], eta: datetime | None, now: datetime, *,
              muted_now: bool) -> datetime | None:
    if result.state != "open":
        return None
    policy = incident.decision.policy
    candidates: list[datetime] = []
    if muted_now:
        candidates.append(now + timedelta(seconds=policy.group_interval_s))
    logs = dict(prior)
    logs.update({(log.audience, log.contact_id): log for log in result.logs})
    repeat = timedelta(seconds=policy.repeat_interval_s)
    # The earliest reminder due among the recipients told that something fires.
    reminders = [log.notified_at + repeat for log in logs.values() if log.firing]
    if reminders:
        candidates.append(max(min(reminders), now + timedelta(seconds=1)))
    follow = follow_up_due(replace(incident, state=result.state,
                                   first_notice_at=result.first_notice_at,
                                   follow_ups=result.follow_ups), eta)
    if follow is not None:
        candidates.append(max(follow, now + timedelta(seconds=1)))
    for item in alerts:
        if statuses[item.fingerprint] == "firing" and item.ends_at is not None:
            candidates.append(max(item.ends_at, now))
    if not candidates:
        # Nothing notified yet (e.g. every alert inhibited): look again at the next tick.
        candidates.append(now + timedelta(seconds=policy.group_interval_s))
    return min(candidates)


def plan_storm(
    storm_id: int, audience: str, decision: RouteDecision, items: Sequence[StormItem],
    rules: FlushRules, now: datetime,
) -> list[PlannedNotice]:
    """One ``storm`` summary per contact of ``audience`` listing the folded incidents."""
    found = rules.audiences.get(audience)
    storm = rules.incident.storm_control
    if found is None or not items:
        return []
    if storm is not None and storm.template:
        decision = replace(decision, template=storm.template)
    first = items[0]
    labels = {"alertname": first.title}
    alert = Alert(labels=labels, annotations={}, status="firing", starts_at=first.started_at,
                  ends_at=None, generator_url="", fingerprint=f"storm{storm_id:012d}")
    incident_key = f"storm-{storm_id}"
    out: list[PlannedNotice] = []
    for contact in found.contacts:
        held_until = quiet_verdict(rules.incident, decision.policy, decision.severity,
                                   contact, now).held_until
        for channel, address, _locale in _first_channels(contact, decision):
            failed_reason = None
            try:
                message = rules.render(decision, alert, contact, channel, "storm", {},
                                       storm=tuple(items))
            except Exception as exc:  # noqa: BLE001 - a RenderError or a bug: a dead letter
                failed_reason = f"template '{decision.template}' failed to render: {exc}"[:1000]
                message = RenderedMessage(subject="[render failed] storm", text="")
                _log.error("incident.render_failed", error=str(exc)[:500],
                           reason=failure_reason(exc), template=decision.template,
                           channel=channel, recipient=mask_address(address),
                           incident=incident_key)
            delivery = NewDelivery(
                idempotency_key=notice_key(incident_key, audience, contact.id, channel,
                                           address, "storm", 1),
                incident_key=incident_key, fingerprint=alert.fingerprint,
                route_id=decision.route_id, phase="storm", channel=channel, recipient=address,
                contact_id=contact.id, audience=audience, severity=decision.severity,
                locale=contact.locale, message=message, failed_reason=failed_reason)
            out.append(PlannedNotice(audience, contact.id, delivery, held_until))
    return out
