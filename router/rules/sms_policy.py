"""A template's own SMS budget: ``sms_policy`` (parts, overflow, transliteration).

The ``sns`` section of the service configuration gives every SMS a default budget
(``max_segments``, ``overflow``, ``transliterate``: :class:`router.sms.SmsPolicy`, applied
by the SMS channel before publishing). A template may set its own::

    templates:
      crisis-outage:
        sms_policy: {max_segments: 1, overflow: fail, transliterate: true}
        sms:
          fr: {text: "..."}

The template's policy is applied when its SMS is rendered (:meth:`TemplateSmsPolicy.fit`,
through :func:`router.sms.fit`): the text is folded to GSM-7 when asked, then cut with an
ellipsis at a word boundary (``truncate``, the default) or refused (``fail``: the
delivery is recorded as failed, permanently, with the reason). The outbox stores the
fitted text, so the channel's own policy finds it within budget. With ``overflow:
fail``, ``tocsin rules check`` also renders every locale of the template's SMS with
representative sample data (:func:`sample_overflows`) and fails when one is over budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from router.models import Alert, Contact, Phase, RouteDecision
from router.sms import SmsInfo, SmsOverflowError, SmsPolicy, fit
from router.strict import Strict

if TYPE_CHECKING:
    from router.rules.templates import CompiledTemplate

__all__ = [
    "SAMPLE_ALERT",
    "SmsPolicyModel",
    "TemplateSmsPolicy",
    "sample_overflows",
]

#: The most parts a concatenated SMS can have (the budget when a policy sets none).
MAX_PARTS = 255
Overflow = Literal["truncate", "fail"]


class SmsPolicyModel(Strict):
    """``sms_policy`` of a template (every key optional; at least one given)."""

    max_segments: int | None = Field(default=None, ge=1, le=10)
    overflow: Overflow | None = None
    transliterate: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SmsPolicyModel:
        if self.max_segments is None and self.overflow is not None:
            raise ValueError("'overflow' needs 'max_segments' (the number of parts it "
                             "applies to)")
        if self.max_segments is None and self.transliterate is None:
            raise ValueError("an empty sms_policy: give max_segments (with overflow), "
                             "transliterate, or both")
        return self


@dataclass(frozen=True, slots=True)
class TemplateSmsPolicy:
    """The compiled ``sms_policy``: ``None`` fields leave the channel's default in force."""

    max_segments: int | None = None
    overflow: Overflow = "truncate"
    transliterate: bool = False

    @classmethod
    def from_model(cls, model: SmsPolicyModel) -> TemplateSmsPolicy:
        """Compile a validated ``sms_policy``."""
        return cls(max_segments=model.max_segments, overflow=model.overflow or "truncate",
                   transliterate=bool(model.transliterate))

    def fit(self, text: str) -> str:
        """``text`` folded and fitted to the budget; raise SmsOverflowError for ``fail``."""
        policy = SmsPolicy(max_segments=self.max_segments or MAX_PARTS,
                           overflow=self.overflow, transliterate=self.transliterate)
        body, _info = fit(text.strip("\n"), policy)
        return body + "\n"

    def describe(self) -> str:
        """``max_segments 1, overflow: fail, transliterate`` (for messages)."""
        parts = []
        if self.max_segments is not None:
            parts.append(f"max_segments {self.max_segments}, overflow: {self.overflow}")
        if self.transliterate:
            parts.append("transliterate")
        return ", ".join(parts)


# --------------------------------------------------------------------------- sample data

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


def _phase(template_name: str) -> Phase:
    suffix = template_name.rsplit(".", 1)[-1] if "." in template_name else ""
    phases: Mapping[str, Phase] = {"update": "update", "follow_up": "follow_up",
                                   "resolved": "resolved", "summary": "summary",
                                   "storm": "storm"}
    return phases.get(suffix, "firing")


def _sample_context(template: CompiledTemplate, locale: str) -> dict[str, Any]:
    from router.incidents.view import StormItem
    from router.rules.templates import build_context

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
    return build_context(decision, alert, contact, phase, _META, locale, storm=storm)


def sample_overflows(template: CompiledTemplate) -> list[tuple[str, SmsInfo | str]]:
    """Locales whose SMS, rendered with sample data, exceed an ``overflow: fail`` budget.

    Each entry is (locale, what the text costs), or (locale, why it could not be
    rendered). Empty when the template has no such policy.
    """
    from router.rules.templates import RenderError, render_message

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
