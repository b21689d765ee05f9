"""Explain how one alert is routed: the walk, the decisions, the rendered messages.

Built on :meth:`RuleSet.explain` (the real evaluator with a tracer) for the walk, and on
a rehearsal through the service's pipeline (:mod:`router.authoring.rehearsal`: intake,
incident engine, scheduler, :func:`router.incidents.flush.plan_flush`) for the messages:
the first notice the alert sends ``group_wait`` after ``now``, and the notice its
resolution sends. What it shows is what the service queues, byte for byte. The result
is a JSON-ready dict (``--format json``) that :func:`format_text` turns into readable
text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from router.authoring.rehearsal import Step, rehearse, settle_s
from router.fingerprint import fingerprint as alert_fingerprint
from router.incidents.flush import recipient_address
from router.models import AckPolicy, Alert, Contact, Delivery, Phase, RenderedMessage
from router.rules.ack_policy import duration_text
from router.rules.quiet import QuietVerdict, quiet_verdict
from router.rules.ruleset import RuleSet
from router.rules.tree import Trace
from router.sms import analyse

__all__ = ["ack_doc", "ack_lines", "explain_alert", "format_text", "message_doc", "quiet_doc"]


def _why(t: Trace) -> str:
    """One sentence saying why the walk did what it did at this node."""
    failed = [m for m in t.matchers if not m.ok]
    if not t.matched:
        parts = []
        for m in failed:
            shown = "missing, read as \"\"" if m.value is None else f"is {m.value!r}"
            parts.append(f"{m.matcher} failed ({m.label} {shown})")
        return "no match: " + "; ".join(parts)
    if t.selected:
        if t.route.children:
            return "matched; none of its children matched, so this route decides"
        return "matched; it has no children, so this route decides"
    return "matched; a child route matched, so the child decides"


def _trace_doc(t: Trace) -> dict[str, Any]:
    r = t.route
    doc: dict[str, Any] = {
        "route_id": r.route_id,
        "position": r.position,
        "name": r.name,
        "depth": t.depth,
        "source": f"{r.source[0]}:{r.source[1]}",
    }
    if t.skipped_reason is not None:
        doc["evaluated"] = False
        doc["reason"] = t.skipped_reason
        return doc
    doc["evaluated"] = True
    doc["matched"] = t.matched
    doc["selected"] = t.selected
    doc["continue"] = r.continue_
    doc["why"] = _why(t)
    doc["matchers"] = [
        {"matcher": m.matcher, "label": m.label, "value": m.value, "ok": m.ok}
        for m in t.matchers
    ]
    return doc


def message_doc(channel: str, msg: RenderedMessage) -> dict[str, Any]:
    """A rendered message as JSON; SMS adds its length, encoding and segment count."""
    doc: dict[str, Any] = {"subject": msg.subject, "text": msg.text, "html": msg.html}
    if channel == "sms":
        body = msg.text.rstrip("\n")
        info = analyse(body)
        doc["sms"] = {"length": info.chars, "encoding": str(info.encoding),
                      "units": info.units, "segments": info.segments}
    return doc


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def quiet_doc(verdict: QuietVerdict) -> dict[str, Any]:
    """A quiet-hours verdict as JSON: held or not, until when (UTC and local), why."""
    local = verdict.until.astimezone(ZoneInfo(verdict.timezone)) if verdict.until else None
    return {
        "policy": verdict.policy,
        "quiet": verdict.quiet,
        "breaks_quiet_hours": verdict.breaks,
        "held": verdict.held,
        "until": _instant(verdict.until),
        "until_local": local.isoformat() if local is not None else None,
        "timezone": verdict.timezone,
        "why": verdict.describe(),
    }


def ack_doc(policy: AckPolicy | None) -> dict[str, Any] | None:
    """A route's effective ack policy as JSON (None: its notices ask for no answer);
    durations as a rule author writes them (``10m``) and in seconds."""
    if policy is None:
        return None
    resend = policy.resend_after_s
    return {
        "mode": policy.mode,
        "resend_after": duration_text(resend) if resend is not None else None,
        "resend_after_s": resend,
        "max_resends": policy.max_resends if resend is not None else 0,
        "escalate": [{"after": duration_text(t.after_s), "after_s": t.after_s,
                      "audiences": list(t.audiences),
                      "channels": {sev: list(chans) for sev, chans in t.channels} or None}
                     for t in policy.escalate],
        "notify_on_ack": policy.notify_on_ack,
    }


def ack_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """:func:`ack_doc` in words, one line per step (``format_text``); nothing when the
    route asks for no answer."""
    if doc is None:
        return []
    who = ("the first answer stops reminders and escalation for everyone"
           if doc["mode"] == "first" else "every recipient must answer")
    lines = [f"ack: mode {doc['mode']}: {who}"]
    if doc["resend_after"] is not None and doc["max_resends"]:
        steps = ", ".join(f"+{duration_text(doc['resend_after_s'] * n)}"
                          for n in range(1, doc["max_resends"] + 1))
        lines.append(f"  reminder every {doc['resend_after']} to those who have not "
                     f"answered, at most {doc['max_resends']} ({steps} after the first "
                     "notice)")
    else:
        lines.append("  no reminder")
    for n, tier in enumerate(doc["escalate"], start=1):
        chans = tier["channels"]
        shown = (", ".join(f"{sev}: {','.join(c)}" for sev, c in sorted(chans.items()))
                 if chans else "the route's channels")
        lines.append(f"  escalation tier {n} at +{tier['after']} unless answered: "
                     f"{', '.join(tier['audiences'])} ({shown})")
    lines.append("  on acknowledgement: " + (
        "the others paged are told who answered" if doc["notify_on_ack"]
        else "nobody else is told"))
    return lines


def _address(contact: Contact, channel: str) -> str | None:
    return recipient_address(contact, channel)


#: (route id, contact id, channel) → the rehearsed outbox rows, one per phase.
_Sent = dict[tuple[str, str, str], dict[str, Delivery]]


def _rehearsed(rules: RuleSet, alert: Alert, phases: tuple[Phase, ...]) -> _Sent:
    """What the service queues for ``alert``: its first notice, then (with ``resolved`` in
    ``phases``) the notice of its resolution, received once the first one is out."""
    steps = [Step(alert.starts_at, (alert,))]
    if "resolved" in phases:
        resolve_at = alert.starts_at + timedelta(seconds=2 * settle_s(rules, [alert]))
        steps.append(Step(resolve_at, (Alert(
            labels=alert.labels, annotations=alert.annotations, status="resolved",
            starts_at=alert.starts_at, ends_at=resolve_at, generator_url="",
            fingerprint=alert.fingerprint),)))
    sent: _Sent = {}
    for window in rehearse(rules, steps):
        for d in window:
            if d.phase in phases or (d.phase == "summary" and "resolved" in phases):
                sent.setdefault((d.route_id, d.contact_id, d.channel), {})[d.phase] = d
    return sent


def explain_alert(
    rules: RuleSet,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    *,
    phases: tuple[Phase, ...] = ("firing", "resolved"),
    now: datetime | None = None,
) -> dict[str, Any]:
    """The full explanation of one alert as a JSON-ready document."""
    traces, decisions = rules.explain(labels)
    starts_at = now or datetime.now(UTC)
    fp = alert_fingerprint(labels)
    alert = Alert(labels=dict(labels), annotations=dict(annotations), status="firing",
                  starts_at=starts_at, ends_at=None, generator_url="", fingerprint=fp)
    sent = _rehearsed(rules, alert, phases) if decisions else {}
    routes: list[dict[str, Any]] = []
    for d in decisions:
        recipients: list[dict[str, Any]] = []
        # The instant the first notice is planned: quiet hours are judged then.
        first_at = starts_at + timedelta(seconds=d.policy.group_wait_s)
        for aud_name in d.audiences:
            audience = rules.audiences[aud_name]
            for contact in audience.contacts:
                verdict = quiet_verdict(rules.incident, d.policy, d.severity, contact,
                                        first_at)
                entry: dict[str, Any] = {
                    "audience": aud_name,
                    "contact": contact.id,
                    "name": contact.name,
                    "locale": contact.locale,
                    "timezone": contact.timezone,
                    "quiet_hours": quiet_doc(verdict),
                    "channels": [],
                }
                for channel in d.channels:
                    address = _address(contact, channel)
                    ch: dict[str, Any] = {"channel": channel, "address": address}
                    if address is None:
                        ch["skipped"] = f"contact has no address for '{channel}'"
                        entry["channels"].append(ch)
                        continue
                    ch["held_until"] = _instant(verdict.held_until)
                    ch["messages"] = {}
                    for phase, delivery in sent.get((d.route_id, contact.id,
                                                     channel), {}).items():
                        if delivery.status == "failed":
                            ch["messages"][phase] = {"error": delivery.last_error or ""}
                        else:
                            ch["messages"][phase] = message_doc(channel, delivery.message)
                    entry["channels"].append(ch)
                recipients.append(entry)
        routes.append({
            "route_id": d.route_id,
            "position": rules.routes[d.route_id].position,
            "name": d.route_name,
            "severity": d.severity,
            "audiences": list(d.audiences),
            "channels": list(d.channels),
            "template": d.template,
            "group_by": ["..."] if d.group_by_all else list(d.group_by),
            "owner": d.owner,
            "ack": ack_doc(d.policy.ack),
            "recipients": recipients,
        })
    return {
        "labels": dict(labels),
        "annotations": dict(annotations),
        "at": starts_at.isoformat().replace("+00:00", "Z"),
        "fingerprint": fp,
        "walk": [_trace_doc(t) for t in traces],
        "matched_routes": routes,
    }


def format_text(doc: Mapping[str, Any]) -> str:
    """Human-readable rendering of :func:`explain_alert`'s document."""
    out: list[str] = []
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(doc["labels"].items()))
    out.append(f"Alert {{{labels}}} at {doc['at']}")
    out.append("")
    out.append("Route tree walk:")
    for step in doc["walk"]:
        pad = "  " * (step["depth"] + 1)
        title = step["position"] + (f" ({step['name']})" if step["name"] else "")
        if not step["evaluated"]:
            out.append(f"{pad}- {title}: skipped, {step['reason']}")
            continue
        verdict = "MATCHED" if step["matched"] else "no match"
        if step["selected"]:
            verdict += ", selected"
        if step["continue"]:
            verdict += ", continue"
        out.append(f"{pad}- {title} [{step['source']}]: {verdict}")
        out.append(f"{pad}    why: {step['why']}")
        if not step["matchers"]:
            out.append(f"{pad}    (no matchers: matches every alert)")
        for m in step["matchers"]:
            shown = "<missing, matched as \"\">" if m["value"] is None else repr(m["value"])
            out.append(f"{pad}    {'ok  ' if m['ok'] else 'FAIL'} {m['matcher']}  "
                       f"({m['label']} = {shown})")
    out.append("")
    out.append(f"Matched routes ({len(doc['matched_routes'])}):")
    for r in doc["matched_routes"]:
        title = r["position"] + (f" ({r['name']})" if r["name"] else f" id {r['route_id']}")
        out.append(f"  {title}: severity={r['severity']} audiences={','.join(r['audiences'])} "
                   f"channels={','.join(r['channels']) or '-'} template={r['template']} "
                   f"group_by={','.join(r['group_by']) or '-'}"
                   + (f" owner={r['owner']}" if r["owner"] else ""))
        out.extend(f"    {line}" for line in ack_lines(r.get("ack")))
        for rec in r["recipients"]:
            out.append(f"    recipient {rec['contact']} ({rec['name']}, audience "
                       f"{rec['audience']}, locale {rec['locale']}, {rec['timezone']}):")
            out.append(f"      quiet hours: {rec['quiet_hours']['why']}")
            for ch in rec["channels"]:
                if "skipped" in ch:
                    out.append(f"      {ch['channel']}: skipped, {ch['skipped']}")
                    continue
                held = ch.get("held_until")
                out.append(f"      {ch['channel']} to {ch['address']}"
                           + (f" (held until {held}):" if held else ":"))
                if not ch["messages"]:
                    out.append("        (no message: the route sends nothing now)")
                for phase, msg in ch["messages"].items():
                    if "error" in msg:
                        out.append(f"        [{phase}] RENDER ERROR: {msg['error']}")
                        continue
                    if msg.get("subject"):
                        out.append(f"        [{phase}] subject: {msg['subject']}")
                    else:
                        out.append(f"        [{phase}]")
                    if "sms" in msg:
                        sms = msg["sms"]
                        out.append(f"          sms: {sms['length']} characters, "
                                   f"{sms['encoding']}, {sms['segments']} segment(s)")
                    for line in msg["text"].rstrip("\n").split("\n"):
                        out.append(f"          | {line}")
                    if msg.get("html"):
                        out.append(f"          (html part: {len(msg['html'])} characters)")
    return "\n".join(out) + "\n"
