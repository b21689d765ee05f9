"""Rule test cases that describe an incident life (`alerts` + `steps`): each phase's
messages come from the service's incident engine and planner on a fake clock."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from router.authoring.testfile import find_test_files, load_test_file
from router.authoring.testrun import run_test_files
from router.fingerprint import fingerprint

#: A route whose template shows what only the real incident sees: the alert count, the
#: follow-up number, the new alerts, the incident id.
RULES = """\
audiences:
  ops: {contacts: [{id: alice, name: Alice, email: alice@example.com}]}
templates:
  t:
    email:
      en:
        subject: "{{ phase }} {{ alert.labels.alertname }} x{{ incident.count }}"
        text: >-
          count={{ incident.count }} total={{ incident.total }}
          follow_up={{ incident.follow_up }} new={{ incident.new | length }}
          id={{ incident.id }}
route:
  name: ops
  audiences: [ops]
  template: t
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  follow_up_after: 20m
  max_follow_ups: 1
  channels: {default: [email]}
"""


def _run(tmp_path: Path, cases: str) -> tuple[int, str]:
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "tests" / "life.yaml").write_text(textwrap.dedent(cases), encoding="utf-8")
    out = io.StringIO()
    code = run_test_files(find_test_files([tmp_path]), out)
    return code, out.getvalue()


LIFE = """\
cases:
  - name: two servers, a follow-up, the end
    alerts:
      - labels: {alertname: Down, instance: a}
    at: "2024-05-02T14:00:00Z"
    steps:
      - at: 0s
        expect:
          messages:
            - {phase: firing, subject: "firing Down x1",
               contains: {text: ["count=1 total=1", "follow_up=0", "new=1"]}}
      - at: 2m
        alerts: [{labels: {alertname: Down, instance: b}}]
        expect:
          messages:
            - {phase: update, subject: "update Down x2",
               contains: {text: ["count=2 total=2", "new=1"]}}
      - at: 20m
        expect:
          messages:
            - {phase: follow_up, subject: "follow_up Down x2",
               contains: {text: ["follow_up=1"]}}
      - at: 40m
        resolve: [0, 1]
        expect:
          messages:
            - {phase: resolved, subject: "resolved Down x0",
               contains: {text: ["count=0 total=2"]}}
"""


def test_incident_life_each_step_gets_its_phase(tmp_path: Path) -> None:
    """Alerts join, the follow-up falls due, they resolve: each step's expectations hold
    for the messages of that phase, with the real incident's count and follow-up number.

    Reproducer: rule test files could only give one alert and rendered it as a
    one-alert incident (`single_alert_view`): `incident.count` was always 1 and
    `incident.follow_up` always 0, whatever the service sends.
    """
    code, text = _run(tmp_path, LIFE)
    assert code == 0, text
    assert text.splitlines()[-1] == "1 passed, 0 failed"


def test_step_window_runs_to_the_next_step(tmp_path: Path) -> None:
    """A step's messages are those planned from its `at` until the next step: a
    follow-up expected one step too early is reported at that step's expectation, with
    the messages that step did plan."""
    broken = LIFE.replace("""      - at: 2m
        alerts: [{labels: {alertname: Down, instance: b}}]
        expect:
          messages:
            - {phase: update,""", """      - at: 2m
        alerts: [{labels: {alertname: Down, instance: b}}]
        expect:
          messages:
            - {phase: follow_up,""")
    code, text = _run(tmp_path, broken)
    assert code == 1
    path = tmp_path / "tests" / "life.yaml"
    assert (f"        {path}:16:15: no message for phase=follow_up") in text.splitlines()
    assert "messages planned (recipient/channel/locale/phase): alice/email/en/update" in text


def test_the_first_notice_goes_out_group_wait_after_the_case_time(tmp_path: Path) -> None:
    """A classic case (`alert` + `expect`) is the first notice of the incident it opens:
    the incident id the template shows is the service's, not a per-alert stand-in.

    Reproducer: the per-alert planner rendered `incident.id` as ``inc-<fingerprint>``.
    """
    stand_in = "inc-" + fingerprint({"alertname": "Down", "instance": "a"})
    code, text = _run(tmp_path, f"""\
        cases:
          - name: first notice
            alert: {{labels: {{alertname: Down, instance: a}}}}
            expect:
              messages:
                - {{not_contains: {{text: ["id={stand_in}"]}},
                   contains: {{text: ["id=inc-", "count=1"]}}}}
        """)
    assert code == 0, text


@pytest.mark.parametrize(("case", "message"), [
    ("""\
  - name: n
    alert: {labels: {}}
    alerts: [{labels: {}}]
    expect: {}
""", "a case gives either 'alert' (one alert) or 'alerts' (a list)"),
    ("""\
  - name: n
    alert: {labels: {}}
    expect: {}
    steps: [{at: 0s}]
""", "a case gives either 'expect' (the first notice) or 'steps' (an incident life)"),
    ("""\
  - name: n
    alerts: [{labels: {}}]
    steps: [{at: 5m}, {at: 1m}]
""", "steps[1].at comes before the step above it: steps are in time order"),
    ("""\
  - name: n
    alerts: [{labels: {}}]
    steps: [{at: 0s, resolve: [1]}]
""", "steps[0].resolve: no alert 1 (the case has 1 alert(s) so far, numbered from 0)"),
])
def test_bad_incident_life_is_a_positioned_error(tmp_path: Path, case: str,
                                                 message: str) -> None:
    """A malformed case is an error at the case's line, saying what to write instead."""
    path = tmp_path / "t.yaml"
    path.write_text("cases:\n" + case, encoding="utf-8")
    tf, problems = load_test_file(path)
    assert tf is None
    assert [(p.line, p.message) for p in problems] == [(2, message)]


def test_step_offset_is_a_duration(tmp_path: Path) -> None:
    """`at` of a step is an Alertmanager duration after the case's time."""
    path = tmp_path / "t.yaml"
    path.write_text("cases:\n  - name: n\n    alerts: [{labels: {}}]\n"
                    "    steps: [{at: soon}]\n", encoding="utf-8")
    tf, problems = load_test_file(path)
    assert tf is None and len(problems) == 1
    assert problems[0].line == 4
