"""The notices of one incident at one instant: a pure function of its state and the rules.

:func:`plan_flush` is THE planner: the scheduler runs it when an incident's timer fires,
and ``tocsin rules test`` (files and ``--labels``) runs the same scheduler on a fake
clock (:mod:`router.authoring.rehearsal`), so a rule test sees the template context,
idempotency keys (:func:`notice_key`) and render-failure handling the service uses. For every
recipient (the contacts of the route's audiences, plus anyone told before) it asks the
dedup decision (:func:`router.incidents.dedup.needs_notice`) whether a notice is due,
picks the phase, applies quiet hours (hold until the window ends, never drop; a newer
notice replaces a held one; a resolution during the hold becomes one ``summary``; so
does a resolution while the first notice is still queued, not yet sent nor being sent),
follow-ups and storm control, renders the message per channel, and returns every
change for the store to apply in one transaction — deliveries, notification-log rows,
held deliveries to cancel, timeline events, the incident's next timer.

Resolved notices and every later notice go to the channels (and addresses) of the
recipient's first notice: everyone who was told that something is wrong is told it is
over, the same way.

Acknowledgements (a route with ``ack:``, :class:`~router.models.AckPolicy`), while the
incident is open and not acknowledged: every notice asks for an answer (the recipient's
log is marked asked; the template gets the code and link, :class:`AckView`); a recipient
asked and still silent gets a ``reminder`` every ``resend_after_s`` after the last
notice that asked them (the end of the quiet hours that held it), at most
``max_resends``; each escalation tier pages its audiences ``after_s`` after the first
notice (phase ``escalation``, on the tier's channels for the severity, else the
route's), and its contacts are asked in turn. Mode ``each``: reminders go to each
recipient until they answer; escalation stops at the first answer. Once acknowledged
(mode ``first``) nothing more is chased: held reminders are cancelled and, with
``notify_on_ack``, every other recipient told so far gets one ``acknowledged`` notice.
Quiet hours hold reminders, escalations and acknowledged notices as they hold first
notices (the same verdict). Reminders are keyed by their number and escalations by their
tier (:func:`notice_key`), and the next step is part of the incident's timer, so a
restart neither repeats nor loses a step.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from router.acks.codes import ack_code
from router.acks.links import AckLinks
from router.incidents.dedup import NotifiedEntry, Reason, needs_notice
from router.incidents.engine import effective_status
from router.incidents.state import (
    HeldNotice,
    Incident,
    IncidentAck,
    IncidentAlert,
    IncidentState,
    RecipientLog,
    TimelineEvent,
)
from router.logging import mask_text
from router.masking import mask_address
from router.models import (
    AckPolicy,
    Alert,
    Contact,
    EscalationTier,
    NewDelivery,
    Phase,
    RenderedMessage,
    RouteDecision,
)
from router.rules import RenderError
from router.rules.incident_rules import IncidentRules
from router.rules.quiet import quiet_until, quiet_verdict
from router.rules.view import (
    NOT_REQUESTED,
    AckView,
    AlertList,
    IncidentView,
    StormItem,
    eta_and_notes,
    incident_view,
)

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
    "recipient_audiences",
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
    """The contact's address on ``channel``, or None if it cannot receive it (no such
    address, or a ``channels`` column of its contact source that leaves it out)."""
    address_of = _ADDRESS_OF.get(channel)
    if contact.channels is not None and channel not in contact.channels:
        return None
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
        storm: tuple[StormItem, ...] = (), ack: AckView = NOT_REQUESTED,
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
    #: Queued first notices (not held by quiet hours) replaced by a ``summary``: cancelled
    #: only if still pending and unleased at commit, else the flush conflicts.
    cancel_queued: list[int] = field(default_factory=list)
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
    #: Acknowledgements: escalation tiers paged so far (the incident's, plus this flush's);
    #: whether the ``acknowledged`` notices are planned; the tiers this flush paged and the
    #: reminders it planned (metrics, counted once committed).
    escalation_tier: int = 0
    ack_notified: bool = False
    escalated: list[int] = field(default_factory=list)
    reminders: int = 0


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


def recipient_audiences(incident: Incident) -> tuple[str, ...]:
    """The audiences ``incident`` notifies: the route's, then those of the escalation
    tiers paged so far."""
    ack = incident.decision.policy.ack
    if ack is None or not incident.escalation_tier:
        return incident.decision.audiences
    extra = [name for tier in ack.escalate[:incident.escalation_tier] for name in tier.audiences]
    return tuple(dict.fromkeys((*incident.decision.audiences, *extra)))


def _recipients(incident: Incident, rules: FlushRules,
                logs: Mapping[tuple[str, str], RecipientLog]) -> list[_Recipient]:
    out: list[_Recipient] = []
    seen: set[tuple[str, str]] = set()
    for audience in recipient_audiences(incident):
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
    ack_links: AckLinks | None = None,
) -> FlushResult:
    """The notices due for ``incident`` at ``now`` (see the module docstring).

    ``inhibited``: fingerprint → whether a firing source inhibits it now.
    ``storm_recent``: audience → first notices sent within the storm window.
    ``ack_links``: builds the acknowledgement link a notice asking for an answer shows
    (None: no links configured; the notice shows the code alone).
    """
    decision = incident.decision
    result = FlushResult(state=incident.state, first_notice_at=incident.first_notice_at,
                         follow_ups=incident.follow_ups,
                         escalation_tier=incident.escalation_tier,
                         ack_notified=incident.ack_notified)

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
    chasing = False  # acknowledgement steps (reminders, escalation) considered now
    if mute_reason is not None:
        result.events.append(TimelineEvent(now, "muted", {"reason": mute_reason}))
    elif representative is not None and not (firing_all and not firing):
        asking = _Asking(incident, ack_links)
        _plan_recipients(incident, rules, logs, firing, resolved, base_view, representative,
                         follow_now, now, result, storm_recent or {}, asking)
        if decision.policy.ack is not None and result.state == "open":
            chasing = bool(firing)
            _plan_acks(incident, decision.policy.ack, rules, logs, firing, resolved,
                       base_view, representative, now, result, asking)
    if follow_now and mute_reason is None and result.state == "open":
        result.follow_ups += 1
        result.events.append(TimelineEvent(now, "follow_up", {"number": result.follow_ups}))
    result.due_at = _next_due(incident, result, logs, alerts, statuses, base_view.eta, now,
                              muted_now=mute_reason is not None, chasing=chasing)
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
    storm_recent: Mapping[str, int], asking: _Asking,
) -> None:
    counts: dict[tuple[str, str, bool], int] = {}
    views: dict[tuple[frozenset[str], int], IncidentView] = {}
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
                len(result.cancel_queued), len(result.storm_counted),
                len(result.storm_folded), len(result.failures),
                result.first_notice_at)
        try:
            _plan_recipient(incident, rules, rcpt, firing, resolved, base_view,
                            representative, follow_now, now, result, storm_recent, counts,
                            taken, asking, views)
        except Exception as exc:  # noqa: BLE001 - recorded on the incident, counted, logged
            (n_notices, n_logs, n_cancel, n_queued, n_counted, n_folded, n_failures,
             result.first_notice_at) = mark
            del result.notices[n_notices:], result.logs[n_logs:], result.cancel[n_cancel:]
            del result.cancel_queued[n_queued:]
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
    asking: _Asking, views: dict[tuple[frozenset[str], int], IncidentView],
) -> None:
    """Plan one recipient's notice (see :func:`_plan_recipients`); ``views``: the
    incident views handed out so far, by (new alerts, follow-up number)."""
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
    queued = _queued_first(log, firing, reason)
    # A newer notice replaces the notices still held by quiet hours; a resolution, the
    # first notices still queued.
    if cancellable or queued:
        result.cancel.extend(h.delivery_id for h in cancellable)
        result.cancel_queued.extend(h.delivery_id for h in queued)
        if any(h.phase in ("firing", "storm", "escalation") for h in (*cancellable, *queued)):
            announced = False
        phase = _collapse(phase, announced, cancellable, firing, policy, queued=bool(queued))
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
    follow_up = result.follow_ups + 1 if phase == "follow_up" else 0
    # Recipients who see the same incident share one view, hence one render when the
    # template does not read them (router/rules/render_cache.py).
    view = views.get((new, follow_up))
    if view is None:
        view = views[new, follow_up] = replace(
            base_view, new=AlertList(a for a in base_view.firing if a.fingerprint in new),
            follow_up=follow_up)
    asks = phase in ("firing", "update", "follow_up") and asking.asks(log, result.state)
    ack = asking.notice(rcpt.contact.id, now) if asks else None
    for channel, address, _locale in channels:
        delivery = _render(incident, rules, rcpt, representative, view, phase, channel,
                           address, seq, result.failures, ack=ack)
        result.notices.append(PlannedNotice(rcpt.audience, rcpt.contact.id, delivery,
                                            held_until))
    if phase == "firing" and result.first_notice_at is None:
        result.first_notice_at = now
    told = _log_entry(rcpt, log, firing, resolved, now,
                      announced or phase in ("firing", "storm"), kept,
                      channels=channels, seq=seq)
    if asks:
        told = replace(told, asked_at=told.asked_at or now, last_asked_at=held_until or now)
    result.logs.append(told)
    key = (phase, rcpt.audience, held_until is not None)
    counts[key] = counts.get(key, 0) + 1


def _phase(reason: Reason, announced: bool) -> Phase:
    if not announced:
        return "firing"
    if reason == "all_resolved":
        return "resolved"
    return "update"


def _queued_first(log: RecipientLog | None, firing: frozenset[str],
                  reason: Reason | None) -> tuple[HeldNotice, ...]:
    """The recipient's first notices to cancel for one ``summary``: the incident resolved
    while they were still queued on every channel of the recipient, none being sent. A
    notice leased for sending, or already sent on one of the channels, is not cancelled:
    the resolved notice follows it (the dispatcher's claim keeps the order)."""
    if log is None or firing or reason != "all_resolved" or not log.queued:
        return ()
    if not all(h.cancellable for h in log.queued) or len(log.queued) < len(log.channels):
        return ()
    return log.queued


def _collapse(phase: Phase | None, announced: bool, cancelled: Sequence[HeldNotice],
              firing: frozenset[str], policy: Any, *, queued: bool = False) -> Phase | None:
    """The phase that replaces held (or queued) notices (see the module docstring)."""
    if announced:
        return phase
    if firing:
        return "firing"  # the first notice, with today's state
    # It fired and resolved while the recipient's first notice was held (or queued: then
    # always one summary, quiet hours did not keep them uninformed).
    if queued:
        return "summary"
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
        announced=announced, held=held,
        asked_at=log.asked_at if log else None,
        last_asked_at=log.last_asked_at if log else None,
        answered_at=log.answered_at if log else None,
        reminders=log.reminders if log else 0)


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
               contact_id=rcpt.contact.id, reason=reason, error=mask_text(str(exc)[:200]))
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
            seq: int, failures: list[tuple[str, str]] | None = None, *,
            ack: AckView | None = None, key_phase: str | None = None,
            decision: RouteDecision | None = None) -> NewDelivery:
    """One delivery of ``phase``; ``key_phase`` (default ``phase``) and ``seq`` key it;
    ``ack``: what the notice says of the acknowledgement (routes with ``ack:``)."""
    decision = decision or incident.decision
    failed_reason: str | None = None
    try:
        message = rules.render(decision, alert, rcpt.contact, channel, phase, incident.meta,
                               incident=view, ack=NOT_REQUESTED if ack is None else ack)
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
        _log.error("incident.render_failed", error=mask_text(str(exc)[:500]), reason=reason,
                   template=decision.template, channel=channel,
                   recipient=mask_address(address), incident=incident.id)
    delivery = NewDelivery(
        idempotency_key=notice_key(incident.id, rcpt.audience, rcpt.contact.id, channel,
                                   address, key_phase or phase, seq),
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
                       failures, ack=ack, key_phase=key_phase, decision=decision)
    return replace(delivery, fallback=replace(fallback, fallback=None))


def _next_due(incident: Incident, result: FlushResult,
              prior: Mapping[tuple[str, str], RecipientLog], alerts: Sequence[IncidentAlert],
              statuses: Mapping[str, str], eta: datetime | None, now: datetime, *,
              muted_now: bool, chasing: bool = False) -> datetime | None:
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
    ack = policy.ack
    if ack is not None and chasing and incident.ack is None:
        steps = [at for log in logs.values() if (at := _reminder_due(ack, log)) is not None]
        tier = _next_tier(ack, incident, result, logs.values())
        if tier is not None:
            steps.append(tier)
        if steps:
            candidates.append(max(min(steps), now + timedelta(seconds=1)))
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


# --------------------------------------------------------------------------- acknowledgements


class _Asking:
    """Whether a notice of ``incident`` asks for an answer, and what its template sees."""

    __slots__ = ("_incident", "_links", "code")

    def __init__(self, incident: Incident, links: AckLinks | None) -> None:
        self._incident = incident
        self._links = links
        self.code = ack_code(incident.id) if incident.decision.policy.ack is not None else ""

    def asks(self, log: RecipientLog | None, state: IncidentState) -> bool:
        """A notice to the owner of ``log`` asks for an answer (none given yet)."""
        return (self._incident.decision.policy.ack is not None and state == "open"
                and self._incident.ack is None
                and (log is None or log.answered_at is None))

    def notice(self, contact_id: str, now: datetime, *, reminder: int = 0,
               tier: int = 0) -> AckView:
        """What a notice asking ``contact_id`` for an answer says."""
        url = None if self._links is None else self._links.url(self._incident.id, contact_id,
                                                               now)
        return AckView(code=self.code, requested=True, url=url, reminder=reminder,
                         tier=tier)


def _set_log(result: FlushResult, log: RecipientLog) -> None:
    """Put ``log`` in the flush's logs, replacing an earlier entry of the same recipient."""
    key = (log.audience, log.contact_id)
    for index, entry in enumerate(result.logs):
        if (entry.audience, entry.contact_id) == key:
            result.logs[index] = log
            return
    result.logs.append(log)


def _reminder_due(ack: AckPolicy, log: RecipientLog) -> datetime | None:
    """When ``log``'s recipient gets their next reminder (None: no more)."""
    if (ack.resend_after_s is None or not log.waiting or log.reminders >= ack.max_resends
            or not log.channels):
        return None
    base = log.last_asked_at or log.asked_at
    assert base is not None
    return base + timedelta(seconds=ack.resend_after_s)


def _next_tier(ack: AckPolicy, incident: Incident, result: FlushResult,
               logs: Iterable[RecipientLog]) -> datetime | None:
    """When the next escalation tier is paged (None: none left, or someone answered).

    Counted from the first notice; when none could be planned (nobody of the route's
    audience is reachable, or their first notices were folded into a storm summary),
    from the incident's opening: nobody answering is all the more reason to escalate."""
    if result.escalation_tier >= len(ack.escalate):
        return None
    if ack.mode == "each" and any(log.answered_at is not None for log in logs):
        return None  # someone is on it: mode each escalates only when nobody answered
    after = ack.escalate[result.escalation_tier].after_s
    return (result.first_notice_at or incident.opened_at) + timedelta(seconds=after)


def _tier_channels(tier: EscalationTier, decision: RouteDecision) -> tuple[str, ...]:
    table = dict(tier.channels)
    return table.get(decision.severity) or table.get("default") or decision.channels


def _plan_acks(incident: Incident, ack: AckPolicy, rules: FlushRules,
               logs: Mapping[tuple[str, str], RecipientLog], firing: frozenset[str],
               resolved: frozenset[str], base_view: IncidentView, representative: Alert,
               now: datetime, result: FlushResult, asking: _Asking) -> None:
    """The acknowledgement steps of an open incident (see the module docstring)."""
    current = dict(logs)
    current.update({(log.audience, log.contact_id): log for log in result.logs})
    contacts = {(r.audience, r.contact.id): r.contact
                for r in _recipients(incident, rules, current)}
    view = replace(base_view, new=AlertList())
    if incident.ack is not None:
        _cancel_held_reminders(current, result)
        if not incident.ack_notified and ack.mode == "first" and ack.notify_on_ack:
            _plan_acknowledged(incident, incident.ack, rules, logs, current, contacts, view,
                               representative, now, result, asking.code)
        result.ack_notified = True
        return
    if not firing:
        return  # every firing alert is inhibited: nothing to chase now
    _plan_reminders(incident, ack, rules, current, contacts, view, representative, now,
                    result, asking)
    while ((at := _next_tier(ack, incident, result, current.values())) is not None
           and at <= now):
        _plan_tier(incident, ack, rules, current, firing, resolved, view, representative,
                   now, result, asking)


def _contact(contacts: Mapping[tuple[str, str], Contact], key: tuple[str, str],
             log: RecipientLog) -> Contact:
    found = contacts.get(key)
    if found is not None:
        return found
    locale = log.channels[0][2] if log.channels else "en"
    return Contact(id=key[1], name=key[1], locale=locale)


def _plan_reminders(incident: Incident, ack: AckPolicy, rules: FlushRules,
                    current: dict[tuple[str, str], RecipientLog],
                    contacts: Mapping[tuple[str, str], Contact], view: IncidentView,
                    representative: Alert, now: datetime, result: FlushResult,
                    asking: _Asking) -> None:
    """A ``reminder`` to every asked recipient still silent ``resend_after_s`` after the
    last notice that asked them (keyed by the reminder's number: planned once)."""
    decision = incident.decision
    sent: dict[int, list[str]] = {}
    for key, log in sorted(current.items()):
        due = _reminder_due(ack, log)
        if due is None or due > now:
            continue
        number = log.reminders + 1
        spent = replace(log, reminders=number, last_asked_at=now)
        with _isolated(incident, key, log, "reminder", representative, now, result,
                       number, spent=spent):
            contact = _contact(contacts, key, log)
            rcpt = _Recipient(key[0], contact, log)
            held_until = quiet_verdict(rules.incident, decision.policy, decision.severity,
                                       contact, now).held_until
            notice = asking.notice(contact.id, now, reminder=number)
            for channel, address, _locale in log.channels:
                delivery = _render(incident, rules, rcpt, representative, view, "reminder",
                                   channel, address, number, result.failures, ack=notice)
                result.notices.append(PlannedNotice(key[0], key[1], delivery, held_until))
            entry = replace(log, reminders=number, last_asked_at=held_until or now)
            current[key] = entry
            _set_log(result, entry)
            sent.setdefault(number, []).append(key[1])
            result.reminders += 1
    for number, ids in sorted(sent.items()):
        result.events.append(TimelineEvent(now, "reminder_sent", {
            "number": number, "recipients": len(ids), "contacts": sorted(set(ids))}))


def _plan_tier(incident: Incident, ack: AckPolicy, rules: FlushRules,
               current: dict[tuple[str, str], RecipientLog], firing: frozenset[str],
               resolved: frozenset[str], view: IncidentView, representative: Alert,
               now: datetime, result: FlushResult, asking: _Asking) -> None:
    """Page the next escalation tier: each of its contacts not told yet gets an
    ``escalation`` notice (keyed by the tier) and is asked in turn."""
    decision = incident.decision
    number = result.escalation_tier + 1
    tier = ack.escalate[number - 1]
    channels_of = replace(decision, channels=_tier_channels(tier, decision))
    taken = {(channel, address) for log in current.values()
             for channel, address, _locale in log.channels}
    paged: list[str] = []
    for audience in tier.audiences:
        found = rules.audiences.get(audience)
        for contact in (found.contacts if found is not None else ()):
            key = (audience, contact.id)
            if key in current:
                continue
            channels = tuple(c for c in _first_channels(contact, channels_of)
                             if (c[0], c[1]) not in taken)
            if not channels:
                continue
            taken.update((c[0], c[1]) for c in channels)
            entry = RecipientLog(audience=audience, contact_id=contact.id, firing=firing,
                                 resolved=resolved, notified_at=now, seq=1, channels=channels,
                                 announced=True, asked_at=now, last_asked_at=now)
            with _isolated(incident, key, entry, "escalation", representative, now, result,
                           number):
                held_until = quiet_verdict(rules.incident, decision.policy,
                                           decision.severity, contact, now).held_until
                rcpt = _Recipient(audience, contact, None)
                notice = asking.notice(contact.id, now, tier=number)
                for channel, address, _locale in channels:
                    delivery = _render(incident, rules, rcpt, representative, view,
                                       "escalation", channel, address, number,
                                       result.failures, ack=notice)
                    result.notices.append(PlannedNotice(audience, contact.id, delivery,
                                                        held_until))
                entry = replace(entry, last_asked_at=held_until or now)
                current[key] = entry
                _set_log(result, entry)
                paged.append(contact.id)
    result.escalation_tier = number
    result.escalated.append(number)
    result.events.append(TimelineEvent(now, "escalated", {
        "tier": number, "audiences": list(tier.audiences), "recipients": len(paged),
        "contacts": paged}))


@contextlib.contextmanager
def _isolated(incident: Incident, key: tuple[str, str], log: RecipientLog, phase: Phase,
              alert: Alert, now: datetime, result: FlushResult, number: int = 1, *,
              spent: RecipientLog | None = None) -> Iterator[None]:
    """One recipient's acknowledgement step that raises is theirs alone: what it added is
    taken back, and a dead letter per channel (keyed like the notice, so planned once)
    says why; the others are planned as usual. The step is not retried (its number or
    tier is spent, ``spent`` is their log then): the dead letter is the record."""
    mark = (len(result.notices), len(result.logs), len(result.failures))
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - recorded on the incident, counted, logged
        del result.notices[mark[0]:], result.logs[mark[1]:], result.failures[mark[2]:]
        reason = failure_reason(exc)
        error = f"planning the {phase} notice failed: {reason}: {exc}"[:500]
        result.failures.append(("plan", reason))
        result.events.append(TimelineEvent(now, "notice_failed", {
            "stage": "plan", "phase": phase, "audience": key[0], "contact_id": key[1],
            "reason": reason, "error": error}))
        _log.error("incident.plan_failed", incident=incident.id, audience=key[0],
                   contact_id=key[1], phase=phase, reason=reason, error=mask_text(str(exc)[:200]))
        decision = incident.decision
        for channel, address, locale in log.channels:
            result.notices.append(PlannedNotice(key[0], key[1], NewDelivery(
                idempotency_key=notice_key(incident.id, key[0], key[1], channel, address,
                                           f"plan_failed:{phase}", number),
                incident_key=incident.id, fingerprint=alert.fingerprint,
                route_id=decision.route_id, phase=phase, channel=channel, recipient=address,
                contact_id=key[1], audience=key[0], severity=decision.severity,
                locale=locale,
                message=RenderedMessage(
                    subject=f"[plan failed] {alert.labels.get('alertname', '')}", text=""),
                failed_reason=error, dead_letter_reason="plan")))
        if spent is not None:
            _set_log(result, spent)


def _cancel_held_reminders(current: dict[tuple[str, str], RecipientLog],
                           result: FlushResult) -> None:
    """Acknowledged: reminders still held by quiet hours are no longer wanted."""
    for key, log in sorted(current.items()):
        drop = [h for h in log.held if h.cancellable and h.phase == "reminder"
                and h.delivery_id not in result.cancel]
        if not drop:
            continue
        result.cancel.extend(h.delivery_id for h in drop)
        entry = replace(log, held=tuple(h for h in log.held if h not in drop))
        current[key] = entry
        _set_log(result, entry)


def _plan_acknowledged(incident: Incident, ack: IncidentAck, rules: FlushRules,
                       prior: Mapping[tuple[str, str], RecipientLog],
                       current: dict[tuple[str, str], RecipientLog],
                       contacts: Mapping[tuple[str, str], Contact], view: IncidentView,
                       representative: Alert, now: datetime, result: FlushResult,
                       code: str) -> None:
    """One ``acknowledged`` notice to every recipient paged before this flush but the one
    who answered ("Acknowledged by Alice at 14:25"); a first notice planned now, after
    the answer, asks nothing and needs no second message."""
    decision = incident.decision
    notice = AckView(code=code, requested=False, by=ack.by_name, at=ack.at,
                     channel=ack.channel or "")
    told: list[str] = []
    for key, log in sorted(current.items()):
        before = prior.get(key)
        if before is None or not before.announced or not log.channels:
            continue
        if ack.by_id is not None and log.contact_id == ack.by_id:
            continue
        with _isolated(incident, key, log, "acknowledged", representative, now, result):
            contact = _contact(contacts, key, log)
            rcpt = _Recipient(key[0], contact, log)
            held_until = quiet_verdict(rules.incident, decision.policy, decision.severity,
                                       contact, now).held_until
            for channel, address, _locale in log.channels:
                delivery = _render(incident, rules, rcpt, representative, view,
                                   "acknowledged", channel, address, 1, result.failures,
                                   ack=notice)
                result.notices.append(PlannedNotice(key[0], key[1], delivery, held_until))
            if held_until is not None:
                _set_log(result, current[key])  # the held delivery is tracked on its log
            told.append(log.contact_id)
    if told:
        result.events.append(TimelineEvent(now, "notice_planned", {
            "phase": "acknowledged", "recipients": len(told), "by": ack.by_name}))


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
    listed = tuple(items)  # one list for every contact: one render per locale and channel
    for contact in found.contacts:
        held_until = quiet_verdict(rules.incident, decision.policy, decision.severity,
                                   contact, now).held_until
        for channel, address, _locale in _first_channels(contact, decision):
            failed_reason = None
            try:
                message = rules.render(decision, alert, contact, channel, "storm", {},
                                       storm=listed)
            except Exception as exc:  # noqa: BLE001 - a RenderError or a bug: a dead letter
                failed_reason = f"template '{decision.template}' failed to render: {exc}"[:1000]
                message = RenderedMessage(subject="[render failed] storm", text="")
                _log.error("incident.render_failed", error=mask_text(str(exc)[:500]),
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
