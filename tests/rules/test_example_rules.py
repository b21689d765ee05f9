"""The shipped example rules (rules/) route and render as the README and e2e tests expect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.models import Alert, Phase
from router.rules import RuleSet, load_rules

RULES = Path(__file__).parents[2] / "rules"
START = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)
END = datetime(2024, 5, 2, 14, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules([RULES])


def _render(rules: RuleSet, labels: dict[str, str], phase: Phase) -> tuple[str, str, str]:
    alert = Alert(labels=labels, annotations={"summary": "node-1 unreachable"}, status=phase,
                  starts_at=START, ends_at=END if phase == "resolved" else None,
                  generator_url="", fingerprint="f")
    (d,) = rules.evaluate(labels)
    (aud,) = d.audiences
    (contact,) = rules.audiences[aud].contacts
    msg = rules.render(d, alert, contact, "email", phase, {})
    assert contact.email is not None
    return contact.email, msg.subject, msg.text


HOSTDOWN = {"alertname": "HostDown", "instance": "node-1", "severity": "critical",
            "team": "infra"}


def test_every_alert_reaches_ops(rules: RuleSet) -> None:
    """The root route sends any alert (even without labels) to ops by email."""
    (d,) = rules.evaluate({})
    assert (d.audiences, d.channels, d.severity) == (("ops",), ("email",), "warning")


def test_hostdown_firing(rules: RuleSet) -> None:
    """HostDown firing goes to ops@example.com with the documented subject."""
    to, subject, text = _render(rules, HOSTDOWN, "firing")
    assert to == "ops@example.com"
    assert subject == "[FIRING:critical] HostDown on node-1"
    assert text.startswith("HostDown is firing (critical) on node-1.\n\nSummary: node-1 "
                           "unreachable\nStarted: 2 May 2024 14:03 UTC\n")


def test_hostdown_resolved(rules: RuleSet) -> None:
    """The resolved notice has its own subject and the end time."""
    to, subject, text = _render(rules, HOSTDOWN, "resolved")
    assert (to, subject) == ("ops@example.com", "[RESOLVED] HostDown on node-1")
    assert "Resolved: 2 May 2024 14:20 UTC" in text


@pytest.mark.parametrize("labels", [{"alertname": "BillingApiErrors", "service": "billing",
                                     "severity": "warning"},
                                    {"alertname": "PgDown", "team": "db", "job": "postgres",
                                     "severity": "page"}])
def test_billing_and_db_go_to_french_on_call(rules: RuleSet, labels: dict[str, str]) -> None:
    """billing and db alerts go to the French contact, in French, with accents intact."""
    to, subject, text = _render(rules, labels, "firing")
    assert to == "astreinte@example.fr"
    assert subject.startswith("[ALERTE:")
    assert "« " in text and "déclenchée" in text and "reçu" in text
    to, subject, text = _render(rules, labels, "resolved")
    assert subject.startswith("[RÉSOLU] ")
    assert "problème" in text and "à" in text
