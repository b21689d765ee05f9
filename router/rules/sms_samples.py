"""SMS templates measured with sample data when the rules load (``tocsin rules check``).

A template whose ``sms_policy`` says ``overflow: fail`` is rendered for every locale of
its SMS with a representative alert (:data:`SAMPLE_ALERT`), as a notice that asks for
an answer (``ack.requested``, the longer text); :func:`sample_overflows` lists the
locales over budget, which the loader reports as errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from router.models import Alert, Contact, Phase, RouteDecision
from router.rules.templates import (
    CompiledTemplate,
    RenderBudget,
    RenderBudgetError,
    RenderError,
    build_context,
    render_budget,
    render_message,
    render_within,
)
from router.rules.view import AckView, StormItem
from router.sms import SmsInfo, SmsOverflowError

__all__ = ["SAMPLE_ALERT", "SAMPLE_CHECK_S", "sample_overflows", "sample_overruns"]

_START = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)
#: A representative alert: typical label and annotation lengths (including those the
#: crisis templates read), used to measure SMS templates when the rules load.
SAMPLE_ALERT = Alert(
    labels={"alertname": "ServiceDown", "instance": "app-1.example.com:9100", "job": "node",
            "service": "checkout", "severity": "critical", "team": "payments",
            "env": "prod"},
    annotations={"summary": "checkout is not answering health checks",
                 "description": "3 of 3 instances fail their health check",
                 "service_name": "Espace client", "impact": "Paiements impossibles",
                 "action": "Bascule sur le site de secours", "eta": "45m",
                 "maintenance_start": "2024-05-04T20:00:00Z",
                 "maintenance_end": "2024-05-04T22:00:00Z"},
    status="firing", starts_at=_START, ends_at=None, generator_url="",
    fingerprint="0123456789abcdef",
)
_META = {"receiver": "tocsin", "external_url": "", "group_key": ""}
_RESOLVED_PHASES = ("resolved", "summary")


def _sample_ack(phase: Phase) -> AckView:
    """A notice that asks for an answer (the longer case: "Reply YES 4821" is added)."""
    return AckView(requested=phase != "acknowledged", code="4821", url=None,
                   by="Alice Martin" if phase == "acknowledged" else "",
                   at=_START + timedelta(minutes=12) if phase == "acknowledged" else None,
                   channel="sms" if phase == "acknowledged" else "",
                   reminder=1 if phase == "reminder" else 0,
                   tier=1 if phase == "escalation" else 0)


def _phase(template_name: str) -> Phase:
    suffix = template_name.rsplit(".", 1)[-1] if "." in template_name else ""
    phases: Mapping[str, Phase] = {"update": "update", "follow_up": "follow_up",
                                   "resolved": "resolved", "summary": "summary",
                                   "storm": "storm", "reminder": "reminder",
                                   "escalation": "escalation",
                                   "acknowledged": "acknowledged"}
    return phases.get(suffix, "firing")


def _sample_context(template: CompiledTemplate, locale: str) -> dict[str, Any]:
    phase = _phase(template.name)
    alert = SAMPLE_ALERT
    if phase in _RESOLVED_PHASES:
        alert = Alert(labels=alert.labels, annotations=alert.annotations, status="resolved",
                      starts_at=alert.starts_at, ends_at=_START + timedelta(minutes=98),
                      generator_url="", fingerprint=alert.fingerprint)
    decision = RouteDecision(route_id="root/0", route_name="sample", severity="critical",
                             audiences=("sample",), channels=("sms",), template=template.name,
                             group_by=("alertname",), group_by_all=False,
                             owner="Customer care")
    contact = Contact(id="sample", name="Sample Recipient", phone="+33612345678",
                      locale=locale, timezone="Europe/Paris")
    storm = tuple(StormItem(id=f"inc-{n:016x}", title=f"ServiceDown {n}", count=3,
                            started_at=_START, state="open", instances=("app-1", "app-2"))
                  for n in range(2 if phase == "storm" else 0))
    return build_context(decision, alert, contact, phase, _META, locale, storm=storm,
                         ack=_sample_ack(phase))


def sample_overflows(template: CompiledTemplate) -> list[tuple[str, SmsInfo | str]]:
    """Locales whose SMS, rendered with sample data, exceed an ``overflow: fail`` budget.

    Each entry is (locale, what the text costs), or (locale, why it could not be
    rendered). Empty when the template has no such policy.
    """
    policy = template.sms_policy
    if policy is None or policy.max_segments is None or policy.overflow != "fail":
        return []
    found: list[tuple[str, SmsInfo | str]] = []
    for locale, message in sorted(template.channels.get("sms", {}).items()):
        try:
            rendered = render_message(template, message, _sample_context(template, locale))
            policy.fit(rendered.text)
        except RenderError as exc:
            found.append((locale, str(exc)))
        except SmsOverflowError as exc:
            found.append((locale, exc.info))
    return found


#: The time budget of the load-time check (:func:`sample_overruns`): short, since a rule
#: load (hot reload included) renders every message once.
SAMPLE_CHECK_S: Final = 0.25


def sample_overruns(template: CompiledTemplate) -> list[tuple[str, str, str]]:
    """(channel, locale, reason) of each message that, rendered with sample data, goes
    over the render budget (its output size, or :data:`SAMPLE_CHECK_S`): what
    ``tocsin rules check`` warns about. Other render failures are not reported here
    (sample data is not every alert)."""
    budget = RenderBudget(time_s=min(SAMPLE_CHECK_S, render_budget().time_s),
                          max_output_chars=render_budget().max_output_chars)
    found: list[tuple[str, str, str]] = []
    for channel, per_locale in sorted(template.channels.items()):
        for locale, message in sorted(per_locale.items()):
            try:
                render_within(template, message, _sample_context(template, locale), budget)
            except RenderBudgetError as exc:
                found.append((channel, locale, str(exc)))
            except RenderError:
                continue
    return found
