"""A template's own SMS budget (sms_policy): rule check, rendering, and what SNS receives."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.sns import SnsClient, SnsSettings, SnsSmsChannel
from router.authoring.rehearsal import Step, rehearse, rehearse_async
from router.cli.rules import check_command
from router.models import Alert, Delivery, OutboundMessage
from router.rules import RuleSet, load_rules
from router.sms import SmsPolicy, analyse
from tests.adapters.sns_services import REGION, MotoServer, moto_server

RULES = """\
audiences:
  a: {contacts: [{id: a, name: A, phone: "+33612345678", email: a@example.com}]}
templates:
  one-part:
    sms_policy: {max_segments: 1}
    sms:
      en: {text: "{{ alert.annotations.summary }}"}
  folded:
    sms_policy: {transliterate: true}
    sms:
      en: {text: "{{ alert.annotations.summary }}"}
  strict:
    sms_policy: {max_segments: 1, overflow: fail}
    sms:
      en: {text: "{{ alert.labels.alertname }}: {{ alert.annotations.summary }}"}
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ alert.annotations.summary }}"}
  plain:
    sms:
      en: {text: "{{ alert.annotations.summary }}"}
route:
  audiences: [a]
  channels: {default: [sms]}
  template: plain
  routes:
    - {matchers: ['t="one-part"'], template: one-part}
    - {matchers: ['t="folded"'], template: folded}
    - {matchers: ['t="strict"'], template: strict, fallback: {sms: email}}
"""
LONG = " ".join(["Le service de paiement ne répond plus depuis ce matin"] * 6)  # ~330 chars
AT = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    return load_rules([tmp_path])


def _plan(rules: RuleSet, template: str, summary: str = LONG) -> list[Delivery]:
    """The outbox rows of the alert's first notice (the service's planner)."""
    labels = {"alertname": "PaymentsDown", "t": template}
    alert = Alert(labels=labels, annotations={"summary": summary}, status="firing",
                  starts_at=AT, ends_at=None, generator_url="", fingerprint="f" * 16)
    [first] = rehearse(rules, [Step(AT, (alert,))])
    return first


def test_template_budget_truncates_when_rendered(rules: RuleSet) -> None:
    """sms_policy max_segments 1: the planned SMS is cut to one part, at a word, with '...'."""
    [sms] = _plan(rules, "one-part")
    body = sms.message.text.rstrip("\n")
    assert analyse(body).segments == 1
    assert body.endswith("...") and body[:-3] == body[:-3].rstrip()
    assert LONG.startswith(body[:-3])


def test_template_without_policy_is_left_to_the_channel(rules: RuleSet) -> None:
    """No sms_policy: the planned text is the rendered text, whatever its length."""
    [sms] = _plan(rules, "plain")
    assert sms.message.text.rstrip("\n") == LONG
    assert analyse(LONG).segments == 3


def test_template_transliterates(rules: RuleSet) -> None:
    """transliterate: true folds to GSM-7 (é kept, ê and typographic quotes folded)."""
    [sms] = _plan(rules, "folded", "Opération « prête » – l’équipe")
    assert sms.message.text == "Opération \" prete \" - l'équipe\n"


def test_overflow_fail_fails_the_delivery_permanently(rules: RuleSet) -> None:
    """overflow: fail at run time: the SMS is recorded failed with the reason; its email
    fallback is queued with it (the store sends it because the SMS failed; the rule
    test's instant dispatcher marks it sent)."""
    sms, fallback = _plan(rules, "strict")
    assert sms.channel == "sms" and sms.status == "failed" and sms.last_error is not None
    assert ("the SMS of template 'strict' (en) needs 3 parts (GSM-7, 337 units) but its "
            "sms_policy allows at most 1 (overflow: fail)") in sms.last_error
    assert fallback.channel == "email" and fallback.fallback_of == sms.id
    assert fallback.status == "sent" and fallback.last_error is None
    [ok] = _plan(rules, "strict", "paiements en panne")
    assert ok.last_error is None and ok.message.text == "PaymentsDown: paiements en panne\n"


def test_rule_check_fails_on_an_overflowing_template(tmp_path: Path) -> None:
    """`tocsin rules check`: an overflow: fail template over budget with sample data is an
    error at its text (exit 1); with overflow: truncate the same text is fine."""
    text = "{{ alert.annotations.description }} " * 5
    rule = (RULES.split("templates:")[0] + "templates:\n  t:\n    sms_policy: {max_segments: 1, "
            "overflow: OVERFLOW}\n    sms:\n      en:\n        text: \"" + text + "\"\n"
            "route: {audiences: [a], template: t, channels: {default: [sms]}}\n")
    path = tmp_path / "rules.yaml"
    path.write_text(rule.replace("OVERFLOW", "fail"), encoding="utf-8")
    out = io.StringIO()
    assert check_command([str(path)], out) == 1
    assert (f"{path}:8:9: error: the SMS of template 't' (en) needs 2 parts (GSM-7, 205 "
            "units) with sample data, over its sms_policy max_segments 1 (overflow: fail)"
            ) in out.getvalue()
    path.write_text(rule.replace("OVERFLOW", "truncate"), encoding="utf-8")
    out = io.StringIO()
    assert check_command([str(path)], out) == 0, out.getvalue()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.mark.integration
async def test_sns_receives_template_budget_or_channel_default(rules: RuleSet,
                                                               moto: MotoServer) -> None:
    """Through SNS (moto): a template's one-part budget wins over the channel's two-part
    default; a template without sms_policy is cut by the channel to two parts."""
    moto.reset()
    settings = SnsSettings(region=REGION, endpoint_url=moto.url, access_key_id="testing",
                           secret_access_key="testing", policy=SmsPolicy(max_segments=2))
    channel = SnsSmsChannel(SnsClient(settings))
    try:
        for i, template in enumerate(("one-part", "plain"), start=1):
            labels = {"alertname": "PaymentsDown", "t": template}
            alert = Alert(labels=labels, annotations={"summary": LONG}, status="firing",
                          starts_at=AT, ends_at=None, generator_url="", fingerprint="f" * 16)
            [[dl]] = await rehearse_async(rules, [Step(AT, (alert,))])
            await channel.send(OutboundMessage(
                delivery_id=i, idempotency_key=dl.idempotency_key, channel="sms",
                recipient=dl.recipient, severity=dl.severity, locale=dl.locale,
                message=dl.message, audience=dl.audience))
    finally:
        await channel.close()
    one_part, plain = (sms["message"] for sms in moto.sms())
    assert analyse(one_part).segments == 1 and one_part.endswith("...")
    assert analyse(plain).segments == 2 and plain.endswith("...")
    assert len(plain) > len(one_part)
