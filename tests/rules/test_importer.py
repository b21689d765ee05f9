"""The Alertmanager importer: each mapping, each not-imported report, invalid inputs."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from router.authoring.importer import AlertmanagerConfigError, ImportResult, import_alertmanager
from router.cli.rules import check_command
from router.rules import RuleSet, load_rules
from router.rules.matchers import MatchType
from tests.rules.helpers import by_position

CONFIGS = Path(__file__).parent / "am_configs"
SHIPPED_TEMPLATES = Path(__file__).parents[2] / "rules" / "templates.yaml"


def _import(text: str) -> ImportResult:
    return import_alertmanager(textwrap.dedent(text), "am.yml")


def _load(result: ImportResult, tmp_path: Path, *extra: Path) -> RuleSet:
    out = tmp_path / "imported.yaml"
    out.write_text(result.rules_yaml, encoding="utf-8")
    return load_rules([out, *extra])


def _receivers(rules: RuleSet, result: ImportResult, labels: dict[str, str]) -> list[str]:
    back = {a: r for r, a in result.audiences.items()}
    return [back[d.audiences[0]] for d in rules.evaluate(labels)]


def _errors(text: str) -> list[str]:
    with pytest.raises(AlertmanagerConfigError) as info:
        _import(text)
    return [str(p) for p in info.value.problems]


ROUTES = """\
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 2h
  routes:
    - matchers: ['team="db"', 'env=~"prod|staging"']
      receiver: db
      continue: true
      group_by: ['...']
      routes:
        - match: {severity: critical}
          receiver: pager
          repeat_interval: 30m
    - match_re: {service: "api-.*"}
      match: {env: prod}
      receiver: api
      mute_time_intervals: [nights]
      active_time_intervals: [weekdays]
    - matchers: ['team=""']
      receiver: unowned
receivers:
  - {name: ops}
  - {name: db}
  - {name: pager}
  - {name: api}
  - {name: unowned}
time_intervals:
  - name: weekdays
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: 09:00, end_time: 18:00}]
        location: Europe/Paris
mute_time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: '00:00', end_time: '06:00'}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|info"']
    equal: [alertname]
  - source_match: {alertname: ClusterDown}
    source_match_re: {cluster: ".+"}
    target_match: {severity: warning}
    target_match_re: {service: "api-.*"}
    equal: [cluster]
"""


def test_route_tree_matchers_continue_and_options(tmp_path: Path) -> None:
    """Matchers of the three syntaxes, continue, group_by, timers and intervals carry over."""
    result = _import(ROUTES)
    rules = _load(result, tmp_path)
    assert _receivers(rules, result, {}) == ["unowned"]  # team missing reads as ""
    assert _receivers(rules, result, {"team": "x"}) == ["ops"]
    assert _receivers(rules, result, {"team": "db", "env": "prod"}) == ["db"]
    assert _receivers(rules, result, {"team": "db", "env": "production"}) == ["ops"]
    assert _receivers(rules, result, {"team": "db", "env": "prod", "severity": "critical"}) == [
        "pager"]
    assert _receivers(rules, result, {"team": "", "env": "prod"}) == ["unowned"]
    assert _receivers(rules, result, {"service": "api-1", "env": "prod", "team": "x"}) == [
        "api"]
    assert _receivers(rules, result, {"service": "xapi-1", "env": "prod", "team": "x"}) == [
        "ops"]
    root, db, pager, api = (by_position(rules)[i] for i in ("root", "root/0", "root/0/0", "root/1"))
    assert root.group_by == ("alertname",) and not root.group_by_all
    assert db.group_by_all and pager.group_by_all
    assert root.policy.group_wait_s == 10 and pager.policy.group_wait_s == 10
    assert pager.policy.repeat_interval_s == 1800 and db.policy.repeat_interval_s == 7200
    assert api.policy.mute_time_intervals == ("nights",)
    assert api.policy.active_time_intervals == ("weekdays",)
    assert set(rules.incident.time_intervals) == {"weekdays", "nights"}
    assert len(rules.incident.inhibit_rules) == 2
    old_style = rules.incident.inhibit_rules[1]
    assert {(m.name, m.type) for m in old_style.target} == {
        ("severity", MatchType.EQUAL), ("service", MatchType.REGEX)}
    assert "start_time: '09:00'" in result.rules_yaml  # unquoted 09:00 stays a string


def test_deprecated_mute_time_intervals_is_reported_as_rewritten() -> None:
    """The deprecated top-level block becomes time_intervals, and the report says so."""
    result = _import(ROUTES)
    assert any(i.kind == "rewritten" and "mute_time_intervals" in i.message and i.line == 36
               for i in result.report)


def test_match_re_is_anchored_and_regexes_are_kept_verbatim(tmp_path: Path) -> None:
    """match_re stays anchored; RE2 spellings (\\d, POSIX classes, \\pL) are kept as written."""
    result = _import("""\
        route:
          receiver: a
          routes:
            - match_re: {build: 'v\\d+'}
              receiver: b
            - matchers: ['zone=~"[[:alpha:]]+"']
              receiver: c
            - matchers: ['name=~"\\\\p{Greek}+"']
              receiver: d
        receivers: [{name: a}, {name: b}, {name: c}, {name: d}]
        """)
    rules = _load(result, tmp_path)
    assert _receivers(rules, result, {"build": "v12"}) == ["b"]
    assert _receivers(rules, result, {"build": "v١٢"}) == ["a"]
    assert _receivers(rules, result, {"build": "xv12"}) == ["a"]
    assert _receivers(rules, result, {"zone": "eu"}) == ["c"]
    assert _receivers(rules, result, {"zone": "é"}) == ["a"]
    assert _receivers(rules, result, {"name": "αβγ"}) == ["d"]
    assert _receivers(rules, result, {"name": "abc"}) == ["a"]
    text = result.rules_yaml
    assert "v\\d+" in text and "[[:alpha:]]+" in text and "\\\\p{Greek}+" in text, text
    assert all("has no integrations" in i.message for i in result.report), result.report


RECEIVERS = """\
global:
  resolve_timeout: 5m
  smtp_smarthost: smtp.example.org:25
templates: ['/etc/am/*.tmpl']
route:
  receiver: mail
  routes:
    - matchers: [team=sre]
      receiver: "sre team/pager"
      labels: {tier: one}
    - matchers: [team=db]
      receiver: sns
    - matchers: [team=web]
      receiver: templated
    - matchers: [team=none]
      receiver: blackhole
receivers:
  - name: mail
    email_configs:
      - to: 'ops@example.org, "Night Shift" <night@example.org>'
        from: am@example.org
        send_resolved: true
  - name: "sre team/pager"
    pagerduty_configs: [{routing_key: abc}]
    slack_configs: [{channel: '#sre', api_url: 'https://hooks.slack.com/x'}]
  - name: sns
    sns_configs:
      - topic_arn: arn:aws:sns:eu-west-1:123456789012:db-alerts
      - phone_number: '+33612345678'
  - name: templated
    email_configs: [{to: '{{ .GroupLabels.team }}@example.org'}]
  - name: blackhole
tracing: {endpoint: 'localhost:4317'}
"""


def test_receivers_become_audiences(tmp_path: Path) -> None:
    """Email and SNS destinations become contacts; others get a marked placeholder."""
    result = _import(RECEIVERS)
    rules = _load(result, tmp_path)
    assert result.audiences == {"mail": "mail", "sre team/pager": "sre-team-pager",
                                "sns": "sns", "templated": "templated",
                                "blackhole": "blackhole"}
    mail = rules.audiences["mail"].contacts
    assert [(c.name, c.email) for c in mail] == [("ops@example.org", "ops@example.org"),
                                                  ("Night Shift", "night@example.org")]
    sns = rules.audiences["sns"].contacts
    assert [c.topic for c in sns] == ["arn:aws:sns:eu-west-1:123456789012:db-alerts", None]
    assert sns[1].phone == "+33612345678"
    for name in ("sre-team-pager", "templated", "blackhole"):
        (contact,) = rules.audiences[name].contacts
        assert contact.email == f"change-me+{name}@example.invalid"
    db = rules.evaluate({"team": "db"})[0]
    assert db.channels == ("sms", "topic")
    assert rules.evaluate({"team": "sre"})[0].channels == ("email",)
    assert "FILL IN" in result.rules_yaml and "# placeholder: replace" in result.rules_yaml


def test_report_lists_what_is_not_imported_with_lines() -> None:
    """Integrations, global settings, templates, route labels and tracing are reported."""
    result = _import(RECEIVERS)
    lines = {(i.line, i.message.split(":")[0]) for i in result.not_imported}
    report = result.format_report()
    assert (2, "global setting 'resolve_timeout'") in lines
    assert (3, "global setting 'smtp_smarthost'") in lines
    assert "am.yml:4: not imported: notification templates" in report
    assert "am.yml:10: not imported: route 'labels'" in report
    assert "am.yml:24: not imported: receiver 'sre team/pager': pagerduty_configs (1)" in report
    assert "am.yml:25: not imported: receiver 'sre team/pager': slack_configs (1)" in report
    assert "Slack channel" in report
    assert "am.yml:20: not imported: receiver 'mail': email_configs[0] from" in report
    assert "am.yml:31: not imported: receiver 'templated': email 'to' is a Go template" in report
    assert "am.yml:32: not imported: receiver 'blackhole' has no integrations" in report
    assert "am.yml:33: not imported: 'tracing'" in report
    assert report.endswith("receiver(s) became audiences\n")


def test_without_template_loads_with_the_shipped_library(tmp_path: Path) -> None:
    """include_template=False references 'default' from rules/templates.yaml."""
    result = import_alertmanager(ROUTES, "am.yml", include_template=False)
    assert "templates:" not in result.rules_yaml
    rules = _load(result, tmp_path, SHIPPED_TEMPLATES)
    assert rules.evaluate({})[0].template == "default"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.iterdir()
                                        if p.suffix in (".yml", ".yaml")))
def test_every_corpus_config_imports_and_passes_check(name: str, tmp_path: Path) -> None:
    """`tocsin rules check` accepts the import of every config in tests/rules/am_configs."""
    result = import_alertmanager((CONFIGS / name).read_text(encoding="utf-8"), name)
    out = tmp_path / "imported.yaml"
    out.write_text(result.rules_yaml, encoding="utf-8")
    buf = io.StringIO()
    assert check_command([str(out)], buf) == 0, buf.getvalue()
    assert "0 warning(s)" in buf.getvalue()


@pytest.mark.parametrize(("text", "expected"), [
    ("route: [\n", "am.yml:2:1: error: invalid YAML"),
    ("- a\n", "am.yml:1:1: error: an Alertmanager configuration is a YAML mapping"),
    ("receivers: [{name: a}]\n", "am.yml:1:1: error: a root 'route' is required"),
    ("route: {receiver: b}\nreceivers: [{name: a}]\n",
     "am.yml:1:19: error: undefined receiver 'b' used in route"),
    ("route: {receiver: a, matchers: [x=y]}\nreceivers: [{name: a}]\n",
     "am.yml:1:22: error: the root route must not have any matchers"),
    ("route: {receiver: a, continue: true}\nreceivers: [{name: a}]\n",
     "am.yml:1:22: error: the root route cannot have 'continue' set"),
    ("route: {}\nreceivers: [{name: a}]\n",
     "am.yml:1:8: error: the root route must specify a default receiver"),
    ("route: {receiver: a, routes: [{recevier: a}]}\nreceivers: [{name: a}]\n",
     "am.yml:1:32: error: unknown route key 'recevier' — did you mean 'receiver'?"),
    ("route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n",
     "am.yml:2:31: error: receiver name 'a' is not unique"),
    ("route: {receiver: a, routes: [{matchers: ['a=~\"(\"']}]}\nreceivers: [{name: a}]\n",
     "am.yml:1:43: error: bad matcher"),
    ("route: {receiver: a, routes: [{match_re: {a: '(?=x)y'}}]}\nreceivers: [{name: a}]\n",
     "am.yml:1:46: error: match_re 'a': invalid regular expression '(?=x)y': invalid or "
     "unsupported Perl syntax: `(?=` (look-around assertions are not supported"),
    ("route: {receiver: a, routes: [{mute_time_intervals: [night]}]}\n"
     "receivers: [{name: a}]\n", "undefined time interval 'night' used in route"),
    ("route: {receiver: a, repeat_interval: 0s}\nreceivers: [{name: a}]\n",
     "am.yml:1:39: error: repeat_interval cannot be zero"),
    ("route: {receiver: a, group_wait: 5 m}\nreceivers: [{name: a}]\n",
     "invalid duration '5 m'"),
    ("route: {receiver: a, group_by: [a, a]}\nreceivers: [{name: a}]\n",
     "duplicated label in group_by"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\nrecievers: []\n",
     "am.yml:3:1: error: unknown top-level key 'recievers' — did you mean 'receivers'?"),
    ("route: {receiver: a}\nreceivers: [{name: a, emial_config: []}]\n",
     "unknown key 'emial_config' in receiver 'a'"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ntime_intervals:\n"
     "  - name: t\n    time_intervals: [{weekdays: [funday]}]\n",
     "am.yml:5:33: error: invalid time interval: invalid weekday 'funday'"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules: [{source_matchers: [a=b], "
     "target_mathcers: [c=d]}]\n", "unknown key 'target_mathcers' in an inhibit rule"),
    ("apiVersion: v1\nkind: Secret\n", "this is a Kubernetes manifest"),
])
def test_invalid_configs_are_errors_with_positions(text: str, expected: str) -> None:
    """What Alertmanager would refuse raises AlertmanagerConfigError, positioned."""
    problems = _errors(text)
    assert any(expected in p for p in problems), problems


def test_receiver_without_name_is_an_error() -> None:
    """A receiver needs a name (positioned at the receiver)."""
    assert _errors("route: {receiver: a}\nreceivers: [{name: a}, {email_configs: []}]\n") == [
        "am.yml:2:24: error: a receiver needs a 'name'"]


def test_case_insensitive_regex_folds_like_re2(tmp_path: Path) -> None:
    """(?i) folds as Go RE2 does: 'ı' (U+0131) is not 'i' (Python's re said it was)."""
    result = _import("""\
        route:
          receiver: a
          routes:
            - match_re: {host: '(?i)db-[a-z]+'}
              receiver: b
        receivers: [{name: a}, {name: b}]
        """)
    assert all("has no integrations" in i.message for i in result.report), result.report
    assert ", 0 rewritten;" in result.format_report()
    rules = _load(result, tmp_path)
    assert _receivers(rules, result, {"host": "DB-main"}) == ["b"]
    assert _receivers(rules, result, {"host": "db-maın"}) == ["a"]
