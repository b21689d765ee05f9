"""Quiet hours in rules as code: one verdict for the engine, explanations and rule tests."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

import router.incidents.flush as flush
from router.authoring.testfile import find_test_files
from router.authoring.testrun import run_test_files
from router.cli.rules import explain_command
from router.models import Contact, IncidentPolicy
from router.rules import RuleSet, load_rules
from router.rules.quiet import quiet_until, quiet_verdict

RULES = """\
quiet_hours:
  nights-and-weekends:
    - times: [{start_time: "22:00", end_time: "08:00"}]
    - weekdays: ["saturday", "sunday"]
audiences:
  people:
    quiet_hours: nights-and-weekends
    contacts:
      - {id: paris, name: P, email: p@example.fr, timezone: Europe/Paris}
      - {id: nyc, name: N, email: n@example.com, timezone: America/New_York}
      - {id: awake, name: A, email: a@example.com, timezone: Europe/Paris, quiet_hours: none}
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ severity }}"}
route:
  audiences: [people]
  template: t
  channels: {default: [email]}
  severity: {label: severity, default: warning}
  routes:
    - name: loud
      matchers: ['loud="yes"']
      break_quiet_hours: {warning: true}
"""
#: Sunday 5 May 2024, 02:30 in Paris (Saturday 20:30 in New York).
SUNDAY_NIGHT = datetime(2024, 5, 5, 0, 30, tzinfo=UTC)
MONDAY_8_PARIS = datetime(2024, 5, 6, 6, 0, tzinfo=UTC)
MONDAY_8_NYC = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def rules(tmp_path: Path) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    return load_rules([tmp_path])


def _contact(rules: RuleSet, contact_id: str) -> Contact:
    return next(c for c in rules.audiences["people"].contacts if c.id == contact_id)


def test_verdict_holds_a_warning_until_the_recipients_morning(rules: RuleSet) -> None:
    """Sunday 02:30 in Paris: a warning is held until Monday 08:00 in each recipient's zone."""
    policy = IncidentPolicy()
    paris = quiet_verdict(rules.incident, policy, "warning", _contact(rules, "paris"),
                          SUNDAY_NIGHT)
    assert paris.held and paris.held_until == MONDAY_8_PARIS
    nyc = quiet_verdict(rules.incident, policy, "warning", _contact(rules, "nyc"), SUNDAY_NIGHT)
    assert nyc.held_until == MONDAY_8_NYC
    assert "until 2024-05-06 08:00 America/New_York (2024-05-06T12:00:00Z)" in nyc.describe()


def test_verdict_critical_breaks_and_none_opts_out(rules: RuleSet) -> None:
    """Critical breaks quiet hours by default (still quiet, not held); 'none' is never quiet."""
    critical = quiet_verdict(rules.incident, IncidentPolicy(), "critical",
                             _contact(rules, "paris"), SUNDAY_NIGHT)
    assert critical.quiet and critical.breaks and not critical.held
    assert "breaks quiet hours for critical" in critical.describe()
    awake = quiet_verdict(rules.incident, IncidentPolicy(), "warning", _contact(rules, "awake"),
                          SUNDAY_NIGHT)
    assert not awake.quiet and not awake.held
    assert "quiet_hours: none" in awake.describe()


def test_engine_uses_the_same_function() -> None:
    """The incident engine calls the shared verdict (no second implementation)."""
    assert flush.quiet_until is quiet_until
    assert vars(flush)["quiet_verdict"] is quiet_verdict


def _explain(rules_dir: Path, *labels: str, fmt: str = "json") -> str:
    out = io.StringIO()
    labels_map = dict(item.split("=", 1) for item in labels)
    code = explain_command([str(rules_dir)], labels_map, {}, fmt,  # type: ignore[arg-type]
                           out, at="2024-05-05T02:30:00+02:00")
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_explain_json_shows_the_hold_per_recipient_and_channel(tmp_path: Path) -> None:
    """--format json: quiet_hours per recipient (UTC and local end), held_until per channel."""
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    doc = json.loads(_explain(tmp_path, "alertname=DiskFull"))
    [route] = doc["matched_routes"]
    by_id = {r["contact"]: r for r in route["recipients"]}
    paris = by_id["paris"]
    assert paris["quiet_hours"]["held"] is True
    assert paris["quiet_hours"]["until"] == "2024-05-06T06:00:00Z"
    assert paris["quiet_hours"]["until_local"] == "2024-05-06T08:00:00+02:00"
    assert paris["channels"][0]["held_until"] == "2024-05-06T06:00:00Z"
    assert by_id["awake"]["quiet_hours"]["held"] is False
    assert by_id["awake"]["channels"][0]["held_until"] is None


def test_explain_text_says_when_the_route_breaks_quiet_hours(tmp_path: Path) -> None:
    """Text output: one quiet-hours line per recipient, the break named with its severity."""
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    text = _explain(tmp_path, "alertname=DiskFull", fmt="text")
    assert ("quiet hours: held by quiet hours (nights-and-weekends) until 2024-05-06 08:00 "
            "Europe/Paris (2024-05-06T06:00:00Z)") in text
    assert "email to p@example.fr (held until 2024-05-06T06:00:00Z):" in text
    loud = _explain(tmp_path, "alertname=DiskFull", "loud=yes", fmt="text")
    assert "but the route breaks quiet hours for warning: sent now" in loud
    assert "held until" not in loud


def _write_case(folder: Path, expect: str) -> Path:
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    test = folder / "tests" / "q.yaml"
    test.write_text(textwrap.dedent("""\
        cases:
          - name: sunday night
            alert: {labels: {alertname: DiskFull}}
            at: "2024-05-05T02:30:00+02:00"
            expect:
        """) + textwrap.indent(textwrap.dedent(expect), " " * 6), encoding="utf-8")
    return test


def _run(folder: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = run_test_files(find_test_files([folder]), out)
    return code, out.getvalue()


def test_test_file_quiet_expectations_pass(tmp_path: Path) -> None:
    """quiet_hours_hold and held_until, per recipient and for all, hold when true."""
    _write_case(tmp_path, """\
        quiet_hours_hold: {paris: true, nyc: true, awake: false}
        held_until: {paris: "2024-05-06T08:00:00+02:00", nyc: "2024-05-06T12:00:00Z"}
        """)
    code, text = _run(tmp_path)
    assert code == 0, text


def test_test_file_quiet_failures_are_positioned(tmp_path: Path) -> None:
    """A wrong hold, a wrong end and an unknown recipient each fail at their key's line."""
    test = _write_case(tmp_path, """\
        quiet_hours_hold: true
        held_until:
          paris: "2024-05-06T09:00:00+02:00"
          nobody: "2024-05-06T08:00:00Z"
        """)
    code, text = _run(tmp_path)
    assert code == 1
    lines = text.splitlines()
    assert (f"        {test}:6:7: quiet hours do not hold the message to awake (route {{}}), "
            "expected quiet_hours_hold: true") in lines
    assert ("            quiet hours switched off for this recipient (quiet_hours: none)"
            in lines)
    assert f"        {test}:8:9: the message to paris (route {{}}) is held until another time" \
        in lines
    assert "            expected: 2024-05-06 09:00 Europe/Paris (2024-05-06T07:00:00Z)" in lines
    assert "            actual:   2024-05-06 08:00 Europe/Paris (2024-05-06T06:00:00Z)" in lines
    assert f"        {test}:9:9: no message for recipient nobody" in lines
    assert lines[-1] == "0 passed, 1 failed"


def test_test_file_held_until_when_not_held(tmp_path: Path) -> None:
    """held_until on a message that breaks quiet hours fails and says why."""
    test = _write_case(tmp_path, """\
        held_until: {awake: "2024-05-06T08:00:00+02:00"}
        """)
    code, text = _run(tmp_path)
    assert code == 1
    assert f"{test}:6:20: quiet hours do not hold the message to awake (route {{}})" in text


def test_test_file_rejects_an_invalid_held_until(tmp_path: Path) -> None:
    """An unreadable held_until is a positioned error of the test file."""
    test = _write_case(tmp_path, """\
        held_until: "monday morning"
        """)
    code, text = _run(tmp_path)
    assert code == 1
    assert f"{test}:6:19: error: " in text and "invalid time 'monday morning'" in text
