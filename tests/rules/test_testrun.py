"""Rule test files: discovery, the runner's verdicts, positions, diffs and exit codes."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from router.authoring.testfile import find_test_files, load_test_file
from router.authoring.testrun import run_test_files
from router.cli import main
from tests.rules.helpers import HEADER

REPO = Path(__file__).parents[2]
RULES = REPO / "rules"
FILES = Path(__file__).parent / "testfiles"


def _run(files: list[Path]) -> tuple[int, str]:
    out = io.StringIO()
    code = run_test_files(files, out)
    return code, out.getvalue()


def test_shipped_rule_tests_pass() -> None:
    """Every case in rules/tests passes against the shipped rules (what `make test` runs)."""
    code, text = _run(find_test_files([RULES]))
    assert code == 0, text
    assert text.rstrip().splitlines()[-1].endswith(" passed, 0 failed")
    assert "FAIL" not in text


def test_discovery_of_test_files(tmp_path: Path) -> None:
    """rules/ means rules/tests/*.yaml; a tests/ folder means its files; a file needs cases:."""
    assert find_test_files([RULES]) == sorted((RULES / "tests").glob("*.yaml"))
    assert find_test_files([RULES / "tests"]) == sorted((RULES / "tests").glob("*.yaml"))
    assert find_test_files([RULES / "routes.yaml"]) == []
    assert find_test_files([FILES / "failing.yaml"]) == [FILES / "failing.yaml"]
    assert find_test_files([tmp_path]) == []


def test_default_rule_set_is_the_folder_above(tmp_path: Path) -> None:
    """Without `rules:`, a test file in X/tests/ tests the rule set in X/."""
    tf, problems = load_test_file(sorted((RULES / "tests").glob("*.yaml"))[0])
    assert problems == [] and tf is not None
    assert tf.rule_paths == (str(RULES),)


def test_failing_case_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing case: FAIL, each failed expectation at file:line:col, then the summary."""
    monkeypatch.chdir(REPO)
    code, text = _run([Path("tests/rules/testfiles/failing.yaml")])
    assert code == 1
    lines = text.splitlines()
    assert "  ok    host down passes" in lines
    assert "  FAIL  wrong route and subject  (tests/rules/testfiles/failing.yaml:9)" in lines
    assert "        tests/rules/testfiles/failing.yaml:13:7: matched routes differ" in lines
    assert '            expected: ["billing"]' in lines
    assert '            actual:   ["default"]' in lines
    assert ("        tests/rules/testfiles/failing.yaml:18:11: subject of the message to ops "
            "on email differs") in lines
    assert '            actual:   "[FIRING:critical] HostDown on node-1"' in lines
    assert ("        tests/rules/testfiles/failing.yaml:20:20: text of the message to ops on "
            'email lacks "not in the text"') in lines
    assert lines[-1] == "1 passed, 1 failed"


def test_invalid_test_file_is_positioned(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in a test file is an error at its line with a suggestion; exit status 1."""
    monkeypatch.chdir(REPO)
    code, text = _run([Path("tests/rules/testfiles/invalid.yaml")])
    assert code == 1
    assert ("tests/rules/testfiles/invalid.yaml:7:7: error: unknown key 'route' — did you "
            "mean 'routes'?") in text
    assert text.splitlines()[-1] == "0 passed, 0 failed"


def _write(folder: Path, rules_yaml: str, tests_yaml: str) -> Path:
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(HEADER + textwrap.dedent(rules_yaml), encoding="utf-8")
    test = folder / "tests" / "cases.yaml"
    test.write_text(textwrap.dedent(tests_yaml), encoding="utf-8")
    return test


def test_multiline_text_failure_shows_a_unified_diff(tmp_path: Path) -> None:
    """An exact multi-line text that differs is shown as a unified diff."""
    _write(tmp_path, """\
        route: {audiences: [a], template: t, channels: {default: [email]}}
        """, """\
        cases:
          - name: text
            alert: {labels: {alertname: A, severity: critical}}
            expect:
              messages:
                - text: |
                    warning
                    second line
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 1
    assert "--- expected" in text and "+++ actual" in text and "-second line" in text


def test_multiple_routes_and_channels_per_recipient(tmp_path: Path) -> None:
    """routes lists every matched route in order; channels maps each contact to its channels."""
    _write(tmp_path, """\
        route:
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - {name: first, matchers: ['x="1"'], audiences: [b], continue: true}
            - {name: second, matchers: ['x=~"1|2"'], audiences: [c, d]}
        """, """\
        cases:
          - name: both routes, by name
            alert: {labels: {x: "1", alertname: A}}
            expect:
              routes: [first, second]
              audiences: [b, c, d]
              channels: {b: [email], c: [email], d: [email]}
              messages:
                - {recipient: d, locale: fr, subject: A}
          - name: only the second
            alert: {labels: {x: "2"}}
            expect:
              routes: [second]
              channels: {c: [email], d: [email]}
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 0, text
    assert text.splitlines()[-1] == "2 passed, 0 failed"


def test_render_error_fails_the_case(tmp_path: Path) -> None:
    """A template that fails at render time fails the case, even without message expectations."""
    header = HEADER.replace('text: "{{ severity }}"', 'text: "{{ alert.starts_at.oops }}"')
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules.yaml").write_text(
        header + "route: {audiences: [a], template: t, channels: {default: [email]}}\n",
        encoding="utf-8")
    (tmp_path / "tests" / "t.yaml").write_text(
        "cases:\n  - name: n\n    alert: {labels: {}}\n    expect: {routes: [root]}\n",
        encoding="utf-8")
    code, text = _run(find_test_files([tmp_path]))
    assert code == 1
    assert "message to a on email failed to render" in text


def test_invalid_rule_set_fails_all_its_cases(tmp_path: Path) -> None:
    """When the tested rule set is invalid, its problems are printed and every case fails."""
    _write(tmp_path, "route: {audiences: [zz], template: t, channels: {default: [email]}}\n",
           "cases:\n  - {name: n, alert: {labels: {}}, expect: {}}\n")
    code, text = _run(find_test_files([tmp_path]))
    assert code == 1
    assert "unknown audience 'zz'" in text
    assert text.splitlines()[-1] == "0 passed, 1 failed"


def test_cli_runs_test_files_without_labels(capsys: pytest.CaptureFixture[str]) -> None:
    """`tocsin rules test rules/` runs rules/tests/*.yaml and exits 0 when all pass."""
    assert main(["rules", "test", str(RULES)]) == 0
    assert " passed, 0 failed" in capsys.readouterr().out


def test_cli_without_labels_or_test_files_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No --labels and no test files: exit 2 with a hint."""
    assert main(["rules", "test", str(tmp_path)]) == 2
    assert "no rule test files found" in capsys.readouterr().err


def test_shipped_rule_tests_survive_a_route_inserted_at_the_top(tmp_path: Path) -> None:
    """Inserting a named route first in a copy of rules/ breaks none of its rule tests.

    Reproducer: the tests referred to routes by position (root/1/0), so they failed as
    soon as a route was inserted above.
    """
    import shutil

    copy = tmp_path / "rules"
    shutil.copytree(RULES, copy)
    routes = copy / "routes.yaml"
    text = routes.read_text(encoding="utf-8")
    anchor = "  routes:\n    # Crisis communication"
    assert anchor in text
    routes.write_text(text.replace(anchor, (
        "  routes:\n    - name: inserted-first\n      matchers: ['team=\"payments\"']\n"
        "      audiences: [ops]\n    # Crisis communication"), 1), encoding="utf-8")
    code, text = _run(find_test_files([copy]))
    assert code == 0, text
    assert "FAIL" not in text


def test_unnamed_route_is_referred_to_by_its_matchers_path(tmp_path: Path) -> None:
    """An unnamed route's identity in `routes:` is its matchers path from the root."""
    _write(tmp_path, """\
        route:
          name: top
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - matchers: ['x="1"']
        """, """\
        cases:
          - name: the unnamed child
            alert: {labels: {x: "1"}}
            expect:
              routes: ['{}/{x="1"}']
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 0, text


def test_route_position_in_a_test_file_is_rejected_with_a_hint(tmp_path: Path) -> None:
    """`routes: [root/0]` fails at its position and says to refer to the route by name."""
    test = _write(tmp_path, """\
        route:
          audiences: [a]
          template: t
          channels: {default: [email]}
          routes:
            - {name: first, matchers: ['x="1"']}
        """, """\
        cases:
          - name: by position
            alert: {labels: {x: "1"}}
            expect:
              routes: [root/0]
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 1
    assert (f"{test}:5:16: no route is called 'root/0' (routes are referred to by name: a "
            "position such as 'root/1' changes when a route is inserted above; give the "
            "route a 'name:')") in text


_ACK_ROUTE = """\
    route:
      audiences: [a]
      template: t
      group_wait: 30s
      channels: {default: [email]}
      ack:
        resend_after: 10m
        max_resends: 1
        escalate: [{after: 20m, audiences: [b]}]
    """


def test_an_escalation_timeline_unless_acknowledged(tmp_path: Path) -> None:
    """A rule test asserts the reminder at +10m, the escalation at +20m, and that an
    answer (``acknowledge``) stops the rest and tells the others paged."""
    _write(tmp_path, _ACK_ROUTE, """\
        cases:
          - name: nobody answers, then a answers
            alerts: [{labels: {alertname: A}}]
            steps:
              - at: 0s
                expect: {messages: [{recipient: a, phase: firing}]}
              - at: 10m
                expect: {messages: [{recipient: a, phase: reminder}]}
              - at: 20m
                expect: {messages: [{recipient: b, phase: escalation}]}
              - at: 25m
                acknowledge: a
                expect:
                  channels: {b: [email]}
                  messages: [{recipient: b, phase: acknowledged}]
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 0, text


def test_an_acknowledgement_step_must_name_a_contact(tmp_path: Path) -> None:
    """``acknowledge`` with an id no audience has fails the case at that key."""
    test = _write(tmp_path, _ACK_ROUTE, """\
        cases:
          - name: typo
            alerts: [{labels: {alertname: A}}]
            steps:
              - at: 10m
                acknowledge: alice
        """)
    code, text = _run(find_test_files([tmp_path]))
    assert code == 1
    assert f"{test}:6:22: no contact 'alice' in the rule set's audiences" in text
