"""The crisis template library (rules/crisis.yaml): complete, short SMS, no internal leaks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.models import Alert, Contact, Phase, RouteDecision
from router.rules import RuleSet, load_rules
from router.sms import Encoding, analyse

RULES = Path(__file__).parents[2] / "rules"
START = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)
END = datetime(2024, 5, 2, 15, 41, tzinfo=UTC)

#: Every crisis template the library must offer, and whether its words are external.
LIBRARY = {
    "crisis-outage": True,
    "crisis-degraded": True,
    "crisis-ddos": True,
    "crisis-power-outage": True,
    "crisis-security-incident": False,
    "crisis-maintenance-announcement": True,
    "crisis-maintenance-reminder": True,
    "crisis-maintenance-start": True,
    "crisis-maintenance-end": True,
    "crisis-corrective-maintenance": True,
    "crisis-follow-up": True,
    "crisis-resolved": True,
    "crisis-temporary-fix": True,
    "crisis-ack-reminder": False,
    "crisis-ack-escalation": False,
    "crisis-acknowledged": False,
}
CHANNELS = ("email", "sms", "push")
PHASES: tuple[Phase, ...] = ("firing", "update", "follow_up", "resolved", "summary")

#: Internal labels with values that must never appear in an external message.
INTERNAL_LABELS = {
    "alertname": "KubeApiErrorBudgetBurn", "instance": "10.42.7.19:9100",
    "job": "kube-apiserver-secret-job", "pod": "payments-7d9f8-xk2lq",
    "namespace": "prod-payments-internal", "cluster": "eu-west-k8s-3",
    "severity": "critical", "team": "sre-tier2", "audience": "customers",
    "crisis": "outage",
}
ANNOTATIONS = {
    "service_name": "Espace client",
    "impact": "Paiements impossibles",
    "action": "Bascule sur le site de secours",
    "eta": "2024-05-02T16:00:00Z",
    "maintenance_start": "2024-05-04T20:00:00Z",
    "maintenance_end": "2024-05-04T22:00:00Z",
}
CONTACTS = {
    "fr": Contact(id="fr", name="Client", email="c@example.fr", phone="+33698765432",
                  locale="fr", timezone="Europe/Paris"),
    "en": Contact(id="en", name="Customer", email="c@example.com", phone="+14155550100",
                  locale="en", timezone="America/New_York"),
}


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules([RULES])


def _alert(phase: Phase, labels: dict[str, str] | None = None) -> Alert:
    resolved = phase in ("resolved", "summary")
    return Alert(labels=labels if labels is not None else INTERNAL_LABELS,
                 annotations=ANNOTATIONS, status="resolved" if resolved else "firing",
                 starts_at=START, ends_at=END if resolved else None,
                 generator_url="http://prometheus.internal:9090/graph", fingerprint="f")


def _decision(template: str) -> RouteDecision:
    return RouteDecision(route_id="root/1/0", route_name=None, severity="critical",
                         audiences=("customers",), channels=CHANNELS, template=template,
                         group_by=(), group_by_all=False, owner="Customer care")


def _messages(rules: RuleSet, template: str) -> list[tuple[str, str, Phase, str]]:
    """(locale, channel, phase, all rendered text) for every combination."""
    out = []
    for locale, contact in CONTACTS.items():
        for channel in CHANNELS:
            for phase in PHASES:
                msg = rules.render(_decision(template), _alert(phase), contact, channel,
                                   phase, {})
                out.append((locale, channel, phase,
                            "\n".join((msg.subject, msg.text, msg.html or ""))))
    return out


def test_library_is_complete(rules: RuleSet) -> None:
    """Every template exists with email, sms and push messages in French and English."""
    for name in LIBRARY:
        template = rules.templates[name]
        for channel in CHANNELS:
            assert set(template.channels[channel]) == {"en", "fr"}, (name, channel)


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_every_message_renders(rules: RuleSet, name: str) -> None:
    """Each template renders for both locales, all channels and every incident phase."""
    for locale, channel, phase, text in _messages(rules, name):
        assert text.strip(), (locale, channel, phase)


@pytest.mark.parametrize("name", sorted(n for n, external in LIBRARY.items() if external))
def test_external_wording_never_leaks_internal_labels(rules: RuleSet, name: str) -> None:
    """External messages show none of the alert's internal label values nor its source URL."""
    leaks = [*INTERNAL_LABELS.values(), "prometheus.internal", "inc-"]
    leaks.remove("critical")  # a plain word that may legitimately appear
    leaks.remove("customers")
    leaks.remove("outage")
    for locale, channel, phase, text in _messages(rules, name):
        for value in leaks:
            assert value not in text, (name, locale, channel, phase, value)


def test_security_incident_is_marked_internal(rules: RuleSet) -> None:
    """The security template says it is internal and confidential, in every message."""
    for locale, channel, phase, text in _messages(rules, "crisis-security-incident"):
        marker = "INTERNE" if locale == "fr" else "INTERNAL"
        assert marker in text.upper(), (locale, channel, phase)


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_sms_fit_one_gsm7_segment(rules: RuleSet, name: str) -> None:
    """With a typical service name, every SMS is one GSM-7 segment (no UCS-2 surprise)."""
    for locale, contact in CONTACTS.items():
        for phase in PHASES:
            msg = rules.render(_decision(name), _alert(phase), contact, "sms", phase, {})
            info = analyse(msg.text.rstrip("\n"))
            assert (info.encoding, info.segments) == (Encoding.GSM7, 1), (
                name, locale, phase, info, msg.text)


def test_messages_say_what_since_when_doing_who_and_eta(rules: RuleSet) -> None:
    """An outage email says what is affected, since when, the action, the owner and the ETA."""
    msg = rules.render(_decision("crisis-outage"), _alert("firing"), CONTACTS["fr"], "email",
                       "firing", {})
    assert msg.subject == "Panne : Espace client indisponible"
    for fragment in ("Espace client est indisponible depuis le 2 mai 2024 à 16:03",
                     "Ce que nous faisons : Bascule sur le site de secours",
                     "Rétablissement prévu : 2 mai 2024 à 18:00 (Europe/Paris)",
                     "Responsable : Customer care", "Impact : Paiements impossibles"):
        assert fragment in msg.text


def test_without_eta_or_service_name_the_words_stay_correct(rules: RuleSet) -> None:
    """Missing optional annotations give a generic, grammatical message."""
    alert = replace(_alert("firing"), annotations={})
    msg = rules.render(_decision("crisis-outage"), alert, CONTACTS["en"], "email", "firing",
                       {})
    assert msg.subject == "Outage: our services unavailable"
    assert "Our services are unavailable since" in msg.text
    assert "Expected resolution: not known yet; we will keep you informed." in msg.text


def test_resolved_with_temporary_fix_announces_maintenance(rules: RuleSet) -> None:
    """A resolved incident marked `fix: temporary` says a maintenance will follow."""
    alert = replace(_alert("resolved"), annotations={**ANNOTATIONS, "fix": "temporary"})
    msg = rules.render(_decision("crisis-outage"), alert, CONTACTS["en"], "email", "resolved",
                       {})
    assert msg.subject == "Resolved: Espace client (temporary fix)"
    assert "a maintenance will follow" in msg.text
    assert "(1 h 38 min)" in msg.text


def test_maintenance_window_in_the_recipient_time_zone(rules: RuleSet) -> None:
    """The announcement shows the planned window in each recipient's zone and language."""
    decision = _decision("crisis-maintenance-announcement")
    fr = rules.render(decision, _alert("firing"), CONTACTS["fr"], "sms", "firing", {})
    assert fr.text == ("MAINTENANCE PROGRAMMEE : Espace client du 04/05 22h00 au 05/05 00h00. "
                       "Coupure possible.\n")
    en = rules.render(decision, _alert("firing"), CONTACTS["en"], "email", "firing", {})
    assert "from 4 May 2024 16:00 America/New_York to 4 May 2024 18:00" in en.text


@pytest.mark.parametrize(("locale", "expected"), [
    ("en-US", "Expected back May 2, 12:00 PM."),  # month first, 12-hour clock
    ("en-GB", "Expected back 2 May, 12:00."),
    ("en", "Expected back May 2, 12:00 PM."),  # CLDR's English is the US one
])
def test_english_sms_dates_follow_the_region(rules: RuleSet, locale: str,
                                             expected: str) -> None:
    """An English SMS writes the ETA as the recipient's region does, never dd/mm for the US."""
    contact = replace(CONTACTS["en"], locale=locale)
    msg = rules.render(_decision("crisis-outage"), _alert("firing"), contact, "sms",
                       "firing", {})
    assert expected in msg.text
    assert analyse(msg.text.rstrip("\n")).encoding is Encoding.GSM7  # no narrow nbsp


def test_french_sms_dates_unchanged(rules: RuleSet) -> None:
    """French SMS keep their dd/mm à HHhMM wording."""
    msg = rules.render(_decision("crisis-outage"), _alert("firing"), CONTACTS["fr"], "sms",
                       "firing", {})
    assert "Retour prevu le 02/05 à 18h00." in msg.text


def _follow_up(rules: RuleSet, contact: Contact, eta: str, now: datetime) -> str:
    from router.rules.view import incident_view

    alert = replace(_alert("follow_up"), annotations={**ANNOTATIONS, "eta": eta})
    view = incident_view(incident_id="inc-1", state="open", alerts=[alert], group_labels={},
                         started_at=START, resolved_at=None, now=now, follow_up=1)
    msg = rules.render(_decision("crisis-outage"), alert, contact, "email", "follow_up", {},
                       incident=view)
    return msg.text


def test_follow_up_never_announces_the_eta_that_just_passed(rules: RuleSet) -> None:
    """At the ETA the follow-up says the announced time has passed, not that it is new."""
    eta = "2024-05-02T16:00:00Z"
    text = _follow_up(rules, CONTACTS["fr"], eta, datetime(2024, 5, 2, 16, 0, 20, tzinfo=UTC))
    assert "Nouvelle heure de rétablissement prévue" not in text
    assert ("L'heure de rétablissement annoncée (2 mai 2024 à 18:00 (Europe/Paris)) est "
            "dépassée") in text


def test_follow_up_gives_a_new_eta_when_there_is_one(rules: RuleSet) -> None:
    """An ETA moved into the future is announced as the new expected time."""
    text = _follow_up(rules, CONTACTS["fr"], "2024-05-02T17:30:00Z",
                      datetime(2024, 5, 2, 16, 0, 20, tzinfo=UTC))
    assert "Nouvelle heure de rétablissement prévue : 2 mai 2024 à 19:30" in text
    assert "dépassée" not in text
