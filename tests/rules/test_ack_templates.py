"""Acknowledgement phases and the ``ack`` template field: variants, fallback, wording."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.errors import RuleError
from router.models import Alert, Contact, Phase, RouteDecision
from router.rules import RuleSet, load_rules
from router.rules.sms_samples import sample_overflows
from router.rules.templates import build_context
from router.rules.view import NOT_REQUESTED, AckView, incident_view
from router.sms import Encoding, analyse
from tests.rules.helpers import load_text

RULES = Path(__file__).parents[2] / "rules"
START = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)
ACKED_AT = datetime(2024, 5, 2, 14, 25, tzinfo=UTC)
ASKED = AckView(requested=True, code="4821", url="https://tocsin.example/ack/tok")
ASKED_SMS = AckView(requested=True, code="4821")
ACKED = AckView(by="Alice Martin", at=ACKED_AT, channel="sms")
ACK_PHASES: tuple[Phase, ...] = ("reminder", "escalation", "acknowledged")

HEADER = """\
audiences:
  a: {contacts: [{id: a, name: A, email: a@example.com}]}
templates:
  t:
    email:
      en: {subject: "{{ phase }}", text: "base {{ phase }} {{ ack.code }}|{{ ack.requested }}"}
  t.reminder:
    email:
      en: {subject: "R{{ ack.reminder }}", text: "reminder variant {{ ack.code }}"}
"""

ALERT = Alert(labels={"alertname": "BillingDown", "service": "billing", "instance": "pay-1",
                      "severity": "page"},
              annotations={"summary": "Les paiements échouent"}, status="firing",
              starts_at=START, ends_at=None, generator_url="", fingerprint="f")


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules([RULES])


def _local(tmp_path: Path) -> RuleSet:
    return load_text(tmp_path, "route: {audiences: [a], template: t, "
                     "channels: {default: [email]}}\n", header=HEADER)


def test_a_phase_variant_wins(tmp_path: Path) -> None:
    """`t.reminder` renders the reminder when the rule set has it."""
    rules = _local(tmp_path)
    (d,) = rules.evaluate({})
    contact = rules.audiences["a"].contacts[0]
    msg = rules.render(d, ALERT, contact, "email", "reminder", {},
                       ack=AckView(requested=True, code="4821", reminder=2))
    assert (msg.subject, msg.text) == ("R2", "reminder variant 4821\n")


@pytest.mark.parametrize("phase", ["escalation", "acknowledged"])
def test_a_missing_variant_falls_back_to_the_base_template(tmp_path: Path,
                                                           phase: Phase) -> None:
    """Without `t.<phase>`, the base template renders, with `phase` set to the new phase."""
    rules = _local(tmp_path)
    (d,) = rules.evaluate({})
    contact = rules.audiences["a"].contacts[0]
    msg = rules.render(d, ALERT, contact, "email", phase, {}, ack=ASKED)
    assert (msg.subject, msg.text) == (phase, f"base {phase} 4821|True\n")


def test_without_ack_the_notice_asks_nothing(tmp_path: Path) -> None:
    """The default `ack` is "not requested": empty code, no link, nobody."""
    rules = _local(tmp_path)
    (d,) = rules.evaluate({})
    msg = rules.render(d, ALERT, rules.audiences["a"].contacts[0], "email", "firing", {})
    assert msg.text == "base firing |False\n"
    assert NOT_REQUESTED == AckView(requested=False, code="", url=None, by="", at=None,
                                    channel="", reminder=0, tier=0)


def test_build_context_carries_the_ack_view() -> None:
    """build_context puts the given AckView (or NOT_REQUESTED) under `ack`."""
    decision = RouteDecision(route_id="r", route_name=None, severity="critical",
                             audiences=("a",), channels=("sms",), template="t",
                             group_by=(), group_by_all=False)
    contact = Contact(id="a", name="A", phone="+33612345678")
    assert build_context(decision, ALERT, contact, "firing", {}, "en")["ack"] is NOT_REQUESTED
    ctx = build_context(decision, ALERT, contact, "acknowledged", {}, "en", ack=ACKED)
    assert ctx["ack"] is ACKED


def test_unknown_ack_attribute_is_a_load_error(tmp_path: Path) -> None:
    """`ack.cod` fails when the rules load, with the fields of `ack` listed."""
    header = HEADER.replace("{{ ack.code }}|", "{{ ack.cod }}|")
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, "route: {audiences: [a], template: t, "
                  "channels: {default: [email]}}\n", header=header)
    (problem,) = info.value.problems
    assert "unknown field 'ack.cod' — did you mean 'code'?" in problem.message
    assert "fields of ack: at, by, channel, code, reminder, requested, tier, url" in (
        problem.message)


def test_sample_check_renders_the_ack_phases(tmp_path: Path) -> None:
    """`overflow: fail` templates are measured in ack phases with a sample answer."""
    header = """\
audiences:
  a: {contacts: [{id: a, name: A, phone: "+33612345678"}]}
templates:
  t:
    sms_policy: {max_segments: 1, overflow: fail}
    sms:
      en: {text: "{{ ack.code }}"}
  t.acknowledged:
    sms_policy: {max_segments: 1, overflow: fail}
    sms:
      en: {text: "by {{ ack.by }} at {{ ack.at | date('%H:%M') }} {{ 'x' * 200 }}"}
"""
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, "route: {audiences: [a], template: t, "
                  "channels: {default: [sms]}}\n", header=header)
    (problem,) = info.value.problems
    assert "template 't.acknowledged' (en) needs 2 parts" in problem.message
    rules = load_text(tmp_path, "route: {audiences: [a], template: t, "
                      "channels: {default: [sms]}}\n",
                      header=header.replace(" {{ 'x' * 200 }}", ""))
    assert sample_overflows(rules.templates["t.acknowledged"]) == []


def _render(rules: RuleSet, labels: dict[str, str], locale: str, channel: str, phase: Phase,
            ack: AckView) -> tuple[str, str, str]:
    (d,) = rules.evaluate(labels)
    contact = next(c for c in rules.audiences["astreinte"].contacts)
    contact = Contact(id=contact.id, name=contact.name, email=contact.email,
                      phone=contact.phone, locale=locale, timezone="Europe/Paris")
    msg = rules.render(d, replace(ALERT, labels=labels), contact, channel, phase, {}, ack=ack)
    return msg.subject, msg.text, msg.html or ""


BILLING = dict(ALERT.labels)
SECURITY = {"alertname": "SuspiciousLogin", "crisis": "security-incident",
            "instance": "bastion-1"}


@pytest.mark.parametrize(("locale", "answer"), [("fr", "Répondez OUI 4821"),
                                                 ("en", "Reply YES 4821")])
@pytest.mark.parametrize("labels", [BILLING, SECURITY], ids=["default", "security"])
def test_firing_sms_says_how_to_answer(shipped: RuleSet, locale: str, answer: str,
                                       labels: dict[str, str]) -> None:
    """The first SMS of a route that asks for an answer ends with the reply to send."""
    _, text, _ = _render(shipped, labels, locale, "sms", "firing", ASKED_SMS)
    assert text.rstrip("\n").endswith(answer), text
    _, plain, _ = _render(shipped, labels, locale, "sms", "firing", NOT_REQUESTED)
    assert answer.split()[0] not in plain


@pytest.mark.parametrize("labels", [BILLING, SECURITY], ids=["default", "security"])
def test_firing_email_carries_the_link(shipped: RuleSet, labels: dict[str, str]) -> None:
    """The e-mail of a notice that asks for an answer has the link, in text and HTML."""
    _, text, html = _render(shipped, labels, "en", "email", "firing", ASKED)
    assert "To acknowledge, open https://tocsin.example/ack/tok or reply YES 4821" in text
    assert '<a href="https://tocsin.example/ack/tok"' in html
    _, text_fr, _ = _render(shipped, labels, "fr", "email", "firing", ASKED)
    assert "ouvrez https://tocsin.example/ack/tok ou répondez OUI 4821 au SMS" in text_fr
    _, plain, plain_html = _render(shipped, labels, "en", "email", "firing", NOT_REQUESTED)
    assert "acknowledge" not in plain.lower()
    assert "/ack/" not in plain_html


@pytest.mark.parametrize(("labels", "locale", "subject"), [
    (BILLING, "en", "[REMINDER:critical] BillingDown on pay-1"),
    (BILLING, "fr", "[RAPPEL:critical] BillingDown sur pay-1"),
    (SECURITY, "en", "[INTERNAL] Reminder 1, not acknowledged yet: SuspiciousLogin on "
                     "bastion-1"),
    (SECURITY, "fr", "[INTERNE] Rappel n° 1, pas encore pris en charge : SuspiciousLogin "
                     "sur bastion-1"),
])
def test_reminder_wording(shipped: RuleSet, labels: dict[str, str], locale: str,
                          subject: str) -> None:
    """A reminder says it is one, and still how to answer."""
    got, text, _ = _render(shipped, labels, locale, "email", "reminder",
                           AckView(requested=True, code="4821", reminder=1))
    assert got == subject
    assert "4821" in text


@pytest.mark.parametrize(("labels", "locale", "fragment"), [
    (BILLING, "en", "Escalated to you (tier 1): BillingDown (critical) on pay-1 has not been "
                    "acknowledged after 20 min."),
    (BILLING, "fr", "Escalade vers vous (niveau 1) : l'alerte « BillingDown » (critical) sur "
                    "pay-1 n'est pas prise en charge après 20 min."),
    (SECURITY, "en", "You are paged (escalation tier 1) because incident"),
    (SECURITY, "fr", "Vous êtes alerté (niveau d'escalade 1) car personne n'a pris en charge"),
])
def test_escalation_wording(shipped: RuleSet, labels: dict[str, str], locale: str,
                            fragment: str) -> None:
    """An escalation tells the new tier why it is paged, and how long it has waited."""
    (d,) = shipped.evaluate(labels)
    view = incident_view(incident_id="inc-1", state="open", alerts=[ALERT], group_labels={},
                         started_at=START, resolved_at=None,
                         now=datetime(2024, 5, 2, 14, 23, tzinfo=UTC))
    contact = Contact(id="x", name="X", email="x@example.com", locale=locale,
                      timezone="Europe/Paris")
    msg = shipped.render(d, ALERT, contact, "email", "escalation", {}, incident=view,
                         ack=AckView(requested=True, code="4821", tier=1))
    assert fragment in msg.text, msg.text


@pytest.mark.parametrize(("labels", "locale", "text"), [
    (BILLING, "en", "ACKNOWLEDGED: BillingDown on pay-1 by Alice Martin at 16:25. "
                    "No need to answer."),
    (BILLING, "fr", "PRIS EN CHARGE : BillingDown sur pay-1 par Alice Martin à 16h25. "
                    "Inutile de répondre."),
    (SECURITY, "en", "ACKNOWLEDGED: SuspiciousLogin (inc-f) by Alice Martin at 16:25. "
                     "No need to answer."),
    (SECURITY, "fr", "PRIS EN CHARGE : SuspiciousLogin (inc-f) par Alice Martin à 16h25. "
                     "Inutile de répondre."),
])
def test_acknowledged_sms_names_who_and_when(shipped: RuleSet, labels: dict[str, str],
                                             locale: str, text: str) -> None:
    """The others paged learn who took it and when, in their time zone."""
    _, got, _ = _render(shipped, labels, locale, "sms", "acknowledged", ACKED)
    assert got == text + "\n"


@pytest.mark.parametrize("labels", [BILLING, SECURITY], ids=["default", "security"])
@pytest.mark.parametrize("locale", ["fr", "en"])
def test_ack_phase_sms_fit_one_gsm7_segment(shipped: RuleSet, labels: dict[str, str],
                                            locale: str) -> None:
    """Every SMS of the ack phases (and the asking first notice) is one GSM-7 part."""
    cases: tuple[tuple[Phase, AckView], ...] = (
        ("firing", ASKED_SMS), ("reminder", ASKED_SMS), ("escalation", ASKED_SMS),
        ("acknowledged", ACKED))
    for phase, ack in cases:
        _, text, _ = _render(shipped, labels, locale, "sms", phase, ack)
        info = analyse(text.rstrip("\n"))
        assert (info.encoding, info.segments) == (Encoding.GSM7, 1), (phase, text)


@pytest.mark.parametrize("phase", ACK_PHASES)
@pytest.mark.parametrize("channel", ["email", "sms", "push"])
def test_every_ack_phase_renders_everywhere(shipped: RuleSet, phase: Phase,
                                            channel: str) -> None:
    """Both templates render every ack phase on every channel, in both languages."""
    ack = ACKED if phase == "acknowledged" else ASKED
    for labels in (BILLING, SECURITY):
        for locale in ("fr", "en"):
            _, text, _ = _render(shipped, labels, locale, channel, phase, ack)
            assert text.strip(), (labels, locale)
