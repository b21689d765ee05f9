"""`tocsin rules diff`: route identities, open incidents, and which real alerts change."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.authoring.diff import diff_alerts, outcome, read_alerts, route_identity_changes
from router.cli import main
from router.clock import FakeClock
from router.fingerprint import fingerprint
from router.models import Alert, IntakeRecord
from router.rules import load_rules
from router.store import SqliteStore
from router.workers.intake import IntakeProcessor

REPO = Path(__file__).parents[2]
RULES = REPO / "rules"
ALERTS = Path(__file__).parent / "alerts" / "sample.jsonl"
T0 = datetime(2024, 5, 2, 14, 0, tzinfo=UTC)


def _changed_rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules with a new 'monitoring' route and warning → critical."""
    new = tmp_path / "new"
    new.mkdir()
    for f in [*RULES.glob("*.yaml"), *RULES.glob("*.csv")]:  # rules and contact files
        shutil.copy(f, new / f.name)
    routes = new / "routes.yaml"
    text = routes.read_text(encoding="utf-8")
    text = text.replace("    - name: database\n", (
        "    - name: monitoring\n"
        "      matchers: ['namespace=\"monitoring\"', 'severity=\"critical\"']\n"
        "      audiences: [astreinte]\n"
        "    - name: database\n"))
    text = text.replace("      warning: warning\n", "      warning: critical\n")
    routes.write_text(text, encoding="utf-8")
    return new


def test_identical_rule_sets_change_nothing() -> None:
    """The same rule set on both sides: 0 changed alerts."""
    rules = load_rules([RULES])
    alerts, problems = read_alerts(ALERTS)
    assert problems == [] and len(alerts) == 199
    groups, changed = diff_alerts(rules, rules, alerts)
    assert (groups, changed) == ([], 0)


def test_changes_are_grouped_and_counted(tmp_path: Path) -> None:
    """Alerts changing the same way form one group; exactly the alerts that differ are listed."""
    old, new = load_rules([RULES]), load_rules([_changed_rules(tmp_path)])
    alerts, _ = read_alerts(ALERTS)
    groups, changed = diff_alerts(old, new, alerts)
    listed = {a.line for g in groups for a in g.alerts}
    differ = {a.line for a in alerts if outcome(old, a.labels) != outcome(new, a.labels)}
    assert listed == differ and changed == len(differ) > 0
    for g in groups:
        assert all(outcome(old, a.labels) == g.old and outcome(new, a.labels) == g.new
                   for a in g.alerts)
    moved = [a.line for a in alerts if a.labels.get("namespace") == "monitoring"
             and a.labels.get("severity") == "critical"]
    route_groups = [g for g in groups if g.changes.get("routes") == (("default",),
                                                                      ("monitoring",))]
    assert sorted(a.line for g in route_groups for a in g.alerts) == moved
    assert all(g.changes["audiences"] == (("ops",), ("astreinte",)) for g in route_groups)
    assert any(g.changes.get("severity") == (("warning",), ("critical",)) for g in groups)


def test_outcome_reports_every_matched_route() -> None:
    """An outcome keeps routes, audiences, channels and severity of each matched route."""
    rules = load_rules([RULES])
    o = outcome(rules, {"service": "billing", "severity": "page"})
    (billing,) = [r for r in rules.routes.values() if r.name == "billing"]
    assert (o.routes, o.audiences, o.severity) == (("billing",), ("astreinte",),
                                                   ("critical",))
    assert o.channels == (billing.channels_for("critical"),)


def test_bad_alert_lines_are_positioned(tmp_path: Path) -> None:
    """A line that is not JSON or has no string labels is an error at its line."""
    f = tmp_path / "a.jsonl"
    f.write_text('# comment\n{"labels": {"a": "b"}}\n{oops\n{"labels": {"a": 1}}\n\n'
                 '{"alertname": "bare"}\n', encoding="utf-8")
    alerts, problems = read_alerts(f)
    assert [a.line for a in alerts] == [2, 6]
    assert alerts[1].labels == {"alertname": "bare"}
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (3, "invalid JSON"), (4, "expected an alert object with 'labels'")]


def test_cli_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints grouped changes and a summary line; --format json is one document."""
    new = _changed_rules(tmp_path)
    alerts, _ = read_alerts(ALERTS)
    _, changed = diff_alerts(load_rules([RULES]), load_rules([new]), alerts)
    assert main(["rules", "diff", str(RULES), str(new), "--alerts", str(ALERTS)]) == 0
    text = capsys.readouterr().out
    assert "  routes:     default  →  monitoring" in text
    assert "  audiences:  ops  →  astreinte" in text
    assert "more (--all lists them)" in text
    assert text.splitlines()[-1] == (
        f"{changed} of 199 alert(s) change route, audience, channel or severity")
    assert main(["rules", "diff", str(RULES), str(new), "--alerts", str(ALERTS),
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["alerts"], doc["changed"]) == (199, changed)
    assert sum(g["count"] for g in doc["groups"]) == changed


def test_cli_invalid_new_rules_exit_one(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid NEW rule set: its problems are printed and the exit status is 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("route: {audiences: [nobody]}\n", encoding="utf-8")
    assert main(["rules", "diff", str(RULES), str(bad), "--alerts", str(ALERTS)]) == 1
    assert "NEW rule set" in capsys.readouterr().out


def _edited_rules(tmp_path: Path) -> Path:
    """Shipped rules with a route inserted first, billing renamed, database removed."""
    new = tmp_path / "edited"
    shutil.copytree(RULES, new)
    routes = new / "routes.yaml"
    text = routes.read_text(encoding="utf-8")
    text = text.replace("  routes:\n    # Crisis", (
        "  routes:\n    - name: payments\n      matchers: ['team=\"payments\"']\n"
        "    # Crisis"), 1)
    text = text.replace("    - name: billing\n", "    - name: invoicing\n", 1)
    head, _, _ = text.partition("    - name: database\n")
    routes.write_text(head, encoding="utf-8")
    return new


def test_routes_whose_identity_changes(tmp_path: Path) -> None:
    """A renamed route and a removed one are listed; an inserted route moves nobody.

    Reproducer: `rules diff` said nothing of route identities (and needed --alerts).
    """
    changes = route_identity_changes(load_rules([RULES]), load_rules([_edited_rules(tmp_path)]))
    assert [(c.old, c.new) for c in changes] == [("billing", "invoicing"), ("database", None)]
    line = (RULES / "routes.yaml").read_text(encoding="utf-8").splitlines().index(
        "    - name: billing") + 1
    assert changes[0].source == f"{RULES / 'routes.yaml'}:{line}"


async def test_cli_lists_open_incidents_whose_route_identity_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --state, the open incidents of a renamed route are listed (database read only)."""
    db = tmp_path / "tocsin.db"
    store = SqliteStore(str(db))
    await store.start()
    rules = load_rules([RULES])
    processor = IntakeProcessor(store, lambda: rules, clock=FakeClock(T0), deadline_s=60)
    labels = {"alertname": "PaymentsFailing", "service": "billing"}
    for labelset in (labels, {"alertname": "HostDown"}):
        await store.append_intake([IntakeRecord(
            source="alertmanager", received_at=T0, meta={},
            alert=Alert(labels=labelset, annotations={}, status="firing", starts_at=T0,
                        ends_at=None, generator_url="", fingerprint=fingerprint(labelset)))])
    while await processor.process_once():
        pass
    [billing] = [i for i in await store.list_incidents() if i.route_id == "billing"]
    await store.close()
    before = db.read_bytes()
    new = _edited_rules(tmp_path)
    assert main(["rules", "diff", str(RULES), str(new), "--state", f"sqlite:///{db}"]) == 0
    text = capsys.readouterr().out
    assert "Routes whose identity changes (2):" in text
    assert "  billing (" in text and "): renamed to invoicing" in text
    assert "Open incidents whose route identity changes (1):" in text
    assert (f'  {billing.id} route billing {{alertname="PaymentsFailing"}} opened '
            f"{billing.opened_at.isoformat()}: renamed to invoicing; stays open") in text
    assert db.read_bytes() == before
    assert main(["rules", "diff", str(RULES), str(new), "--state", f"sqlite:///{db}",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [i["id"] for i in doc["open_incidents_changing_route"]] == [billing.id]
    assert doc["route_identity_changes"][1] == {
        "old": "database", "new": None, "source": doc["route_identity_changes"][1]["source"]}


def test_cli_missing_state_database_exits_one(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--state naming no database: a clear error, exit 1 (no empty database created)."""
    missing = tmp_path / "none.db"
    assert main(["rules", "diff", str(RULES), str(RULES), "--state",
                 f"sqlite:///{missing}"]) == 1
    assert "no state database at" in capsys.readouterr().out
    assert not missing.exists()
