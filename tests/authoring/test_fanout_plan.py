"""``tocsin audiences plan``: recipients, unreachable contacts, SMS segments per locale,
time at the configured rates and cost, in text and JSON (router/authoring/fanout_plan.py)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.authoring.fanout_plan import channel_rates, plan_fanout
from router.cli.audiences import plan_command
from router.cli.main import main
from router.config import ServiceConfig
from router.errors import PlanError
from router.rules import RuleSet, load_rules

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2024, 5, 2, 14, 3, tzinfo=UTC)

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  customers:
    contacts:
      - {id: c-fr-1, name: Un, email: un@example.fr, phone: "+33612345601", locale: fr}
      - {id: c-fr-2, name: Deux, email: deux@example.fr, phone: "+33612345602", locale: fr}
      - {id: c-us-1, name: One, email: one@example.com, phone: "+14155550101", locale: en-US}
      - {id: c-us-2, name: Two, phone: "+14155550102", locale: en-US}
      - {id: c-gb-1, name: Three, email: three@example.co.uk, locale: en-GB}
      - {id: c-us-3, name: Same mailbox, email: one@example.com, locale: en-US}
  staff:
    contacts:
      - {id: c-fr-1, name: Un, email: un@example.fr, phone: "+33612345601", locale: fr}
      - {id: s-1, name: Staff, email: staff@example.com}
templates:
  default:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "for {{ recipient.name }}"}
      fr: {subject: "{{ alert.labels.alertname }}", text: "pour {{ recipient.name }}"}
    sms:
      en: {text: "{{ alert.labels.alertname }}: {{ 'x' * 170 }}"}
      fr: {text: "« {{ alert.labels.alertname }} » en cours"}
route:
  audiences: [customers]
  template: default
  severity: {label: severity, default: critical}
  channels: {default: [email, sms]}
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "routes.yaml").write_text(RULES, encoding="utf-8")
    return folder


@pytest.fixture
def rules(rules_dir: Path) -> RuleSet:
    return load_rules([rules_dir])


def _config(rules_dir: Path, **extra: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "rules": [str(rules_dir)],
        "sns": {"rate_per_s": 2},
        "dispatch": {"lanes": {"email": {"rate_per_s": 4}}},
        "costs": {"currency": "EUR", "sms_segment": 0.05,
                  "sms_segment_by_prefix": {"+33": 0.07}, "email": 0.001},
        **extra,
    })


def _plan(rules: RuleSet, rules_dir: Path, *audiences: str, **kw: Any) -> dict[str, Any]:
    config = _config(rules_dir)
    return plan_fanout(rules, audiences or ("customers",), labels={"alertname": "Down"},
                       rates=channel_rates(config), costs=config.costs, now=AT, **kw)


def test_recipients_per_channel_and_locale(rules: RuleSet, rules_dir: Path) -> None:
    """Each channel counts who it reaches per locale; one mailbox shared by two contacts
    gets one message, as the planner sends it."""
    plan = _plan(rules, rules_dir)
    email, sms = plan["channels"]["email"], plan["channels"]["sms"]
    assert (email["recipients"], email["locales"]) == (4, {"en-GB": 1, "en-US": 1, "fr": 2})
    assert email["same_address"] == 1
    assert (sms["recipients"], sms["locales"]) == (4, {"en-US": 2, "fr": 2})


def test_unreachable_contacts_say_why(rules: RuleSet, rules_dir: Path) -> None:
    """A contact without an e-mail or a phone is listed as unreachable on that channel."""
    plan = _plan(rules, rules_dir)
    assert plan["channels"]["email"]["unreachable"] == {
        "count": 1, "why": "no e-mail address", "contacts": ["c-us-2"]}
    assert plan["channels"]["sms"]["unreachable"] == {
        "count": 2, "why": "no phone number", "contacts": ["c-gb-1", "c-us-3"]}


def test_sms_segments_and_encoding_per_locale(rules: RuleSet, rules_dir: Path) -> None:
    """The SMS of each locale is rendered with the labels: a long GSM-7 text is 2 parts,
    French guillemets turn the message UCS-2."""
    locales = _plan(rules, rules_dir)["channels"]["sms"]["sms"]["locales"]
    assert (locales["en-US"]["encoding"], locales["en-US"]["segments_each"]) == ("GSM-7", 2)
    assert locales["en-US"]["text"].startswith("Down: xxx")
    assert (locales["fr"]["encoding"], locales["fr"]["segments_each"]) == ("UCS-2", 1)
    assert locales["fr"]["text"] == "« Down » en cours"
    assert _plan(rules, rules_dir)["channels"]["sms"]["sms"]["segments"] == 2 * 2 + 2 * 1


def test_time_at_the_configured_rates(rules: RuleSet, rules_dir: Path) -> None:
    """Each lane's time is its recipients over its rate; the whole is the slowest lane."""
    plan = _plan(rules, rules_dir)
    assert plan["channels"]["sms"]["duration_s"] == 4 / 2
    assert plan["channels"]["sms"]["rate_source"] == "sns.rate_per_s"
    assert plan["channels"]["email"]["duration_s"] == 4 / 4
    assert plan["channels"]["email"]["rate_source"] == "dispatch.lanes.email.rate_per_s"
    assert plan["duration_s"] == 2.0
    # Without an sns section, SMS go at SNS's default 20/s; e-mail has no limit.
    default = channel_rates(ServiceConfig())
    assert (default["sms"].per_s, default["email"].per_s) == (20.0, 0.0)


def test_cost_per_segment_by_destination_and_per_email(rules: RuleSet,
                                                       rules_dir: Path) -> None:
    """SMS cost their segments at the price of the phone's prefix; e-mails their unit price."""
    cost = _plan(rules, rules_dir)["cost"]
    sms = 2 * 1 * 0.07 + 2 * 2 * 0.05  # two French UCS-2 singles, two US 2-part texts
    assert cost["channels"]["sms"] == pytest.approx(sms)
    assert cost["channels"]["email"] == pytest.approx(4 * 0.001)
    assert cost["total"] == pytest.approx(sms + 0.004)
    assert (cost["currency"], cost["not_priced"]) == ("EUR", [])


def test_unpriced_channels_are_said_not_guessed(rules: RuleSet, rules_dir: Path) -> None:
    """Without prices the cost is unknown, not zero."""
    config = ServiceConfig.model_validate({"rules": [str(rules_dir)]})
    plan = plan_fanout(rules, ["customers"], rates=channel_rates(config), costs=config.costs,
                       now=AT)
    assert plan["cost"]["channels"] == {"email": None, "sms": None}
    assert plan["cost"]["not_priced"] == ["email", "sms"]


def test_a_contact_in_two_audiences_is_planned_once(rules: RuleSet, rules_dir: Path) -> None:
    """c-fr-1 is in both audiences: one message."""
    plan = _plan(rules, rules_dir, "customers", "staff")
    assert plan["contacts"] == 7
    assert plan["channels"]["email"]["locales"] == {"en": 1, "en-GB": 1, "en-US": 1, "fr": 2}


def test_large_sms_lists_are_advised_an_sns_topic(rules: RuleSet, rules_dir: Path) -> None:
    """Past the threshold of SMS recipients the plan advises publishing to a topic."""
    assert _plan(rules, rules_dir)["advice"] == []
    advice = _plan(rules, rules_dir, topic_threshold=3)["advice"]
    assert len(advice) == 1 and "SNS topic" in advice[0] and "4 SMS recipients" in advice[0]


@pytest.mark.parametrize(("kw", "why"), [
    ({"template": "defualt"}, "unknown template 'defualt' — did you mean 'default'?"),
    ({"channels": ["push"]}, "template 'default' has no 'push' message"),
])
def test_unknown_template_or_channel(rules: RuleSet, rules_dir: Path, kw: dict[str, Any],
                                     why: str) -> None:
    """A template or channel the rule set lacks is a PlanError naming it."""
    with pytest.raises(PlanError, match=why):
        _plan(rules, rules_dir, **kw)


def test_cli_uses_the_rules_of_the_config(rules_dir: Path) -> None:
    """Without --rules the plan reads the rule set the service config names; JSON out."""
    out, err = io.StringIO(), io.StringIO()
    code = plan_command(_config(rules_dir), ["customers"], out, err,
                        labels={"alertname": "Down"}, fmt="json")
    assert (code, err.getvalue()) == (0, "")
    doc = json.loads(out.getvalue())
    assert doc["channels"]["sms"]["recipients"] == 4
    assert doc["template"] == "default"


def test_cli_text_plan(rules_dir: Path) -> None:
    """The text plan says recipients, unreachable, segments, time and cost."""
    out, err = io.StringIO(), io.StringIO()
    assert plan_command(_config(rules_dir), ["customers"], out, err,
                        labels={"alertname": "Down"}) == 0
    text = out.getvalue()
    for line in ("  email: 4 (en-GB: 1, en-US: 1, fr: 2), 1 more sharing an address",
                 "  sms: 2 (no phone number): c-gb-1, c-us-3",
                 "  fr: 17 characters, UCS-2, 1 segment(s) x 2 recipient(s) = 2 segment(s)",
                 "  sms: 4 message(s) at 2/s (sns.rate_per_s): 2.0 s",
                 "  total: 0.3440 EUR"):
        assert line in text, line


def test_cli_unknown_audience_exits_1(rules_dir: Path) -> None:
    """An unknown audience is an error naming the closest one."""
    out, err = io.StringIO(), io.StringIO()
    assert plan_command(_config(rules_dir), ["customer"], out, err) == 1
    assert "unknown audience 'customer' — did you mean 'customers'?" in err.getvalue()


def test_cli_on_the_example_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin audiences plan customers --rules rules/` works on the shipped rule set."""
    code = main(["audiences", "plan", "customers", "--rules", str(REPO / "rules"),
                 "--template", "crisis-outage", "--labels", "crisis=outage",
                 "--format", "json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["channels"]["sms"]["unreachable"]["contacts"] == ["customer-en"]
    assert doc["channels"]["sms"]["sms"]["locales"]["fr"]["encoding"] == "GSM-7"


def test_quiet_hours_and_the_matched_route_are_shown(capsys: pytest.CaptureFixture[str],
                                                     ) -> None:
    """On a Sunday night a warning to the example customers is held by their quiet hours;
    the plan names the route the labels match, with its own template and channels."""
    code = main(["audiences", "plan", "customers", "--rules", str(REPO / "rules"),
                 "--template", "crisis-outage", "--labels", "crisis=outage",
                 "audience=customers", "severity=warning", "--at", "2024-05-05T00:30:00Z",
                 "--format", "json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["route"] == {"id": "customers-outage", "name": "customers-outage",
                            "template": "crisis-outage", "channels": ["email", "sms"]}
    assert doc["quiet_hours"]["held"] == 2
    assert doc["quiet_hours"]["until_latest"] == "2024-05-06T12:00:00Z"  # 08:00 New York
