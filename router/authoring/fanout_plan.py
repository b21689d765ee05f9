"""A fan-out plan before it goes (``tocsin audiences plan``): who a notice to some
audiences reaches, on which channel and in which locale, who it cannot reach and why,
what its SMS cost in segments, how long the configured channel rates make it take, and
what it costs at the configured prices.

Pure: a rule set, the channel rates (:func:`channel_rates`, from the service config's
``dispatch.lanes`` and channel sections) and the prices (``costs``) in, a JSON-ready
document out (:func:`plan_fanout`), which :func:`format_plan` puts in words. The SMS of
each locale is rendered once, for the first contact of that locale, by the rule set's
own :meth:`RuleSet.render` (the firing notice, with the labels given), and its segment
count stands for every recipient of that locale: a template that prints the contact's
name varies by a few characters, the plan says it is a sample. A contact in several of
the audiences is counted once, as the planner sends it one notice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from router.config import CostsConfig, ServiceConfig
from router.errors import PlanError, RenderError
from router.fingerprint import fingerprint as alert_fingerprint
from router.incidents.flush import recipient_address
from router.models import Alert, Contact, RouteDecision
from router.rules.problems import did_you_mean
from router.rules.quiet import quiet_verdict
from router.rules.ruleset import RuleSet
from router.sms import analyse

__all__ = ["TOPIC_THRESHOLD", "ChannelRate", "channel_rates", "format_plan", "plan_fanout"]

#: Above this many SMS recipients the plan advises publishing to an SNS topic instead.
TOPIC_THRESHOLD = 10_000
#: At most this many contact ids are listed per unreachable channel (the rest counted).
_LISTED = 10

_WHY_UNREACHABLE = {
    "email": "no e-mail address",
    "sms": "no phone number",
    "topic": "not an SNS topic contact",
    "push": "an SNS topic has no browser",
}


@dataclass(frozen=True, slots=True)
class ChannelRate:
    """A channel's send rate (messages per second; 0 = unlimited) and where it is set."""

    per_s: float
    source: str


def channel_rates(config: ServiceConfig) -> dict[str, ChannelRate]:
    """Each channel's rate as the dispatcher applies it: ``dispatch.lanes.<channel>.
    rate_per_s`` when set, else the channel section's (SNS SMS 20/s, topics 10/s, Web
    Push 50/s by default; e-mail: unlimited)."""
    sns_sms = config.sns.rate_per_s if config.sns is not None else 20.0
    sns_topic = config.sns.topic_rate_per_s if config.sns is not None else 10.0
    push = config.webpush.rate_per_s if config.webpush is not None else 50.0
    defaults = {"email": (0.0, "dispatch.lanes.email.rate_per_s unset"),
                "sms": (sns_sms, "sns.rate_per_s"),
                "topic": (sns_topic, "sns.topic_rate_per_s"),
                "push": (push, "webpush.rate_per_s")}
    lanes = config.dispatch.lanes
    rates: dict[str, ChannelRate] = {}
    for channel, (rate, source) in defaults.items():
        lane = getattr(lanes, channel)
        if lane.rate_per_s is not None:
            rates[channel] = ChannelRate(lane.rate_per_s, f"dispatch.lanes.{channel}.rate_per_s")
        else:
            rates[channel] = ChannelRate(rate, source)
    return rates


def _contacts(rules: RuleSet, audiences: Sequence[str]) -> list[Contact]:
    unknown = [a for a in audiences if a not in rules.audiences]
    if unknown:
        raise PlanError(f"unknown audience '{unknown[0]}'"
                        f"{did_you_mean(unknown[0], rules.audiences)}")
    seen: set[str] = set()
    out: list[Contact] = []
    for name in audiences:
        for contact in rules.audiences[name].contacts:
            if contact.id not in seen:
                seen.add(contact.id)
                out.append(contact)
    return out


def _matched(rules: RuleSet, labels: Mapping[str, str],
             audiences: Sequence[str]) -> RouteDecision | None:
    """The route the labels match that targets one of the audiences, else the first."""
    decisions = rules.evaluate(labels)
    return next((d for d in decisions if set(d.audiences) & set(audiences)),
                decisions[0] if decisions else None)


def _decision(matched: RouteDecision | None, labels: Mapping[str, str],
              audiences: Sequence[str], template: str,
              channels: Sequence[str]) -> RouteDecision:
    """The route decision the render sees: severity, owner and timers of the matched
    route, with the plan's template, audiences and channels."""
    if matched is None:
        return RouteDecision(route_id="plan", route_name=None,
                             severity=labels.get("severity", "warning"),
                             audiences=tuple(audiences), channels=tuple(channels),
                             template=template, group_by=(), group_by_all=False)
    return replace(matched, audiences=tuple(audiences), channels=tuple(channels),
                   template=template)


def _quiet(rules: RuleSet, decision: RouteDecision, contacts: Sequence[Contact],
           at: datetime) -> dict[str, Any]:
    """Who quiet hours hold at ``at`` (the planner's own verdict), and until when."""
    held = [(c, v.held_until) for c in contacts
            if (v := quiet_verdict(rules.incident, decision.policy, decision.severity, c,
                                   at)).held_until is not None]
    latest = max((u for _, u in held if u is not None), default=None)
    return {"held": len(held), "contacts": [c.id for c, _ in held[:_LISTED]],
            "until_latest": None if latest is None
            else latest.astimezone(UTC).isoformat().replace("+00:00", "Z")}


def _duration(count: int, rate: ChannelRate) -> float | None:
    return None if rate.per_s <= 0 else count / rate.per_s


def plan_fanout(
    rules: RuleSet,
    audiences: Sequence[str],
    *,
    template: str = "default",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    channels: Sequence[str] | None = None,
    rates: Mapping[str, ChannelRate],
    costs: CostsConfig,
    now: datetime | None = None,
    topic_threshold: int = TOPIC_THRESHOLD,
) -> dict[str, Any]:
    """The plan of one notice (``template``, firing) to ``audiences`` as a JSON-ready
    document. ``channels``: default, every channel the template has messages for.
    Raises PlanError for an unknown audience, template or channel."""
    compiled = rules.templates.get(template)
    if compiled is None:
        raise PlanError(f"unknown template '{template}'{did_you_mean(template, rules.templates)}")
    used = list(channels) if channels else sorted(compiled.channels)
    missing = [c for c in used if c not in compiled.channels]
    if missing:
        raise PlanError(f"template '{template}' has no '{missing[0]}' message (it has: "
                        f"{', '.join(sorted(compiled.channels))})")
    contacts = _contacts(rules, audiences)
    labels = dict(labels or {})
    matched = _matched(rules, labels, audiences)
    decision = _decision(matched, labels, audiences, template, used)
    at = now or datetime.now(UTC)
    alert = Alert(labels=labels, annotations=dict(annotations or {}), status="firing",
                  starts_at=at, ends_at=None, generator_url="",
                  fingerprint=alert_fingerprint(labels))
    per_channel: dict[str, dict[str, Any]] = {}
    for channel in used:
        reached: dict[str, list[Contact]] = {}
        unreachable: list[Contact] = []
        addresses: set[str] = set()
        shared = 0  # the planner sends one message per address on a channel
        for contact in contacts:
            address = recipient_address(contact, channel)
            if address is None:
                unreachable.append(contact)
            elif address in addresses:
                shared += 1
            else:
                addresses.add(address)
                reached.setdefault(contact.locale, []).append(contact)
        count = sum(len(v) for v in reached.values())
        rate = rates.get(channel, ChannelRate(0.0, "no rate limit"))
        doc: dict[str, Any] = {
            "recipients": count,
            "locales": {loc: len(v) for loc, v in sorted(reached.items())},
            "unreachable": {"count": len(unreachable),
                            "why": _WHY_UNREACHABLE.get(channel, "no address"),
                            "contacts": [c.id for c in unreachable[:_LISTED]]},
            "same_address": shared,
            "rate_per_s": rate.per_s, "rate_source": rate.source,
            "duration_s": _duration(count, rate),
        }
        if channel == "push":
            doc["note"] = ("push reaches the browsers each contact subscribed (registered "
                           "at run time, not in the rule set): contacts without one are "
                           "not reached")
        if channel == "sms":
            doc["sms"] = _sms(rules, decision, alert, reached, costs)
        per_channel[channel] = doc
    plan: dict[str, Any] = {
        "audiences": list(audiences),
        "contacts": len(contacts),
        "template": template,
        "phase": "firing",
        "labels": labels,
        "severity": decision.severity,
        # The route these labels match (its severity, owner and quiet-hours policy are
        # the plan's); its own template and channels, to compare with the plan's.
        "route": None if matched is None else {
            "id": matched.route_id, "name": matched.route_name,
            "template": matched.template, "channels": list(matched.channels)},
        "quiet_hours": _quiet(rules, decision, contacts, at),
        "channels": per_channel,
        "duration_s": _longest(per_channel),
        "cost": _cost(per_channel, costs),
        "advice": _advice(per_channel, topic_threshold),
    }
    return plan


def _sms(rules: RuleSet, decision: RouteDecision, alert: Alert,
         reached: Mapping[str, list[Contact]], costs: CostsConfig) -> dict[str, Any]:
    locales: dict[str, Any] = {}
    segments_total = 0
    cost: float | None = 0.0
    for locale, people in sorted(reached.items()):
        sample = people[0]
        try:
            text = rules.render(decision, alert, sample, "sms", "firing", {}).text
        except RenderError as exc:
            locales[locale] = {"recipients": len(people), "sample_contact": sample.id,
                               "error": str(exc)}
            cost = None
            continue
        info = analyse(text.rstrip("\n"))
        segments = info.segments * len(people)
        segments_total += segments
        prices = [costs.sms_segment_price(p.phone or "") for p in people]
        if cost is not None and all(p is not None for p in prices):
            cost += sum(info.segments * (p or 0.0) for p in prices)
        else:
            cost = None
        locales[locale] = {"recipients": len(people), "sample_contact": sample.id,
                           "text": text.rstrip("\n"), "encoding": str(info.encoding),
                           "length": info.chars, "segments_each": info.segments,
                           "segments": segments}
    return {"locales": locales, "segments": segments_total,
            "cost": None if cost is None else round(cost, 6)}


def _longest(per_channel: Mapping[str, Mapping[str, Any]]) -> float | None:
    """Channels go out in parallel lanes: the whole fan-out lasts as its slowest lane
    (None when every lane with recipients is unlimited)."""
    times = [d["duration_s"] for d in per_channel.values() if d["duration_s"] is not None]
    return max(times) if times else None


def _cost(per_channel: Mapping[str, Mapping[str, Any]], costs: CostsConfig) -> dict[str, Any]:
    items: dict[str, float | None] = {}
    for channel, doc in per_channel.items():
        if channel == "sms":
            items[channel] = doc["sms"]["cost"]
            continue
        price = {"email": costs.email, "topic": costs.topic_publish,
                 "push": costs.push}.get(channel)
        items[channel] = None if price is None else round(price * doc["recipients"], 6)
    known = [v for v in items.values() if v is not None]
    unknown = sorted(c for c, v in items.items() if v is None
                     and per_channel[c]["recipients"])
    return {"currency": costs.currency, "channels": items,
            "total": round(sum(known), 6), "not_priced": unknown}


def _advice(per_channel: Mapping[str, Mapping[str, Any]], threshold: int) -> list[str]:
    sms = per_channel.get("sms")
    if sms is None or sms["recipients"] <= threshold:
        return []
    took = sms["duration_s"]
    how_long = "" if took is None else f" (about {_human(took)} at {sms['rate_per_s']:g}/s)"
    return [f"{sms['recipients']} SMS recipients{how_long}: more than {threshold}, "
            "publishing once to an SNS topic they subscribe to (a contact with "
            "'topic: <ARN>' on channel 'topic') is one call for Tocsin, and SNS fans it "
            "out at the account's SMS throughput"]


def _human(seconds: float) -> str:
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{math.ceil(minutes)} min"
    return f"{int(minutes // 60)} h {math.ceil(minutes % 60)} min"


def _money(value: float | None, currency: str) -> str:
    return "not priced" if value is None else f"{value:.4f} {currency}"


def format_plan(plan: Mapping[str, Any]) -> str:
    """:func:`plan_fanout`'s document in words."""
    out = [f"Fan-out plan: {', '.join(plan['audiences'])} ({plan['contacts']} contact(s)), "
           f"template {plan['template']}, {plan['phase']} notice, severity {plan['severity']}"]
    if plan["labels"]:
        out.append("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(plan["labels"].items())))
    route = plan["route"]
    if route is not None:
        out.append(f"route matched: {route['name'] or route['id']} (its template "
                   f"{route['template']}, channels {', '.join(route['channels']) or '-'})")
    quiet = plan["quiet_hours"]
    if quiet["held"]:
        out.append(f"held by quiet hours now: {quiet['held']} contact(s) "
                   f"({', '.join(quiet['contacts'])}{' ...' if quiet['held'] > _LISTED else ''}),"
                   f" until {quiet['until_latest']} at the latest")
    out.append("")
    out.append("Recipients per channel and locale:")
    for channel, doc in plan["channels"].items():
        locales = ", ".join(f"{loc}: {n}" for loc, n in doc["locales"].items()) or "-"
        out.append(f"  {channel}: {doc['recipients']} ({locales})"
                   + (f", {doc['same_address']} more sharing an address already reached"
                      if doc["same_address"] else ""))
        if "note" in doc:
            out.append(f"    note: {doc['note']}")
    out.append("")
    out.append("Unreachable:")
    none = True
    for channel, doc in plan["channels"].items():
        gone = doc["unreachable"]
        if not gone["count"]:
            continue
        none = False
        listed = ", ".join(gone["contacts"])
        more = gone["count"] - len(gone["contacts"])
        out.append(f"  {channel}: {gone['count']} ({gone['why']}): {listed}"
                   + (f" and {more} more" if more else ""))
    if none:
        out.append("  nobody")
    sms = plan["channels"].get("sms")
    if sms is not None:
        out.append("")
        out.append("SMS per locale (the firing notice rendered for a sample contact):")
        for locale, doc in sms["sms"]["locales"].items():
            if "error" in doc:
                out.append(f"  {locale}: RENDER ERROR for {doc['sample_contact']}: "
                           f"{doc['error']}")
                continue
            out.append(f"  {locale}: {doc['length']} characters, {doc['encoding']}, "
                       f"{doc['segments_each']} segment(s) x {doc['recipients']} "
                       f"recipient(s) = {doc['segments']} segment(s) "
                       f"(sample: {doc['sample_contact']})")
            out.append(f"    | {doc['text']}")
        out.append(f"  total: {sms['sms']['segments']} segment(s)")
    out.append("")
    out.append("Time at the configured rates (each channel in its own lane):")
    for channel, doc in plan["channels"].items():
        if doc["duration_s"] is None:
            out.append(f"  {channel}: {doc['recipients']} message(s), no rate limit "
                       f"({doc['rate_source']}): as fast as the provider accepts them")
        else:
            out.append(f"  {channel}: {doc['recipients']} message(s) at "
                       f"{doc['rate_per_s']:g}/s ({doc['rate_source']}): "
                       f"{_human(doc['duration_s'])}")
    if plan["duration_s"] is not None:
        out.append(f"  whole fan-out: about {_human(plan['duration_s'])} (the slowest lane)")
    cost = plan["cost"]
    out.append("")
    out.append(f"Estimated cost ({cost['currency']}):")
    for channel, value in cost["channels"].items():
        out.append(f"  {channel}: {_money(value, cost['currency'])}")
    out.append(f"  total{' of the priced channels' if cost['not_priced'] else ''}: "
               f"{_money(cost['total'], cost['currency'])}"
               + (f" (not priced: {', '.join(cost['not_priced'])}; set costs.* in the "
                  "service config)" if cost["not_priced"] else ""))
    for advice in plan["advice"]:
        out.append("")
        out.append(f"Advice: {advice}")
    return "\n".join(out) + "\n"
