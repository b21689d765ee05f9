"""The rule commands: check output format and exit codes, explain in text and JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from router.rules.cli import check_command, explain_command

RULES = Path(__file__).parents[2] / "rules"
BROKEN = Path(__file__).parent / "broken"


def test_check_ok_on_shipped_rules() -> None:
    """The shipped example rules are valid: exit 0 and a summary line."""
    out = io.StringIO()
    assert check_command([str(RULES)], out) == 0
    assert out.getvalue().startswith("ok: 2 file(s), 3 route(s)")


def test_check_prints_position_source_line_and_caret(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error is printed as file:line:col: error: message, then the line and a caret."""
    monkeypatch.chdir(BROKEN)
    out = io.StringIO()
    assert check_command(["unknown-key.yaml"], out) == 1
    assert out.getvalue() == (
        "unknown-key.yaml:12:3: error: unknown key 'chanels' — did you mean 'channels'?\n"
        "      chanels: {default: [email]}\n"
        "      ^\n"
        "1 error(s), 0 warning(s)\n"
    )


def test_check_warnings_only_exits_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are printed but do not fail the check."""
    monkeypatch.chdir(BROKEN)
    out = io.StringIO()
    assert check_command(["unreachable.yaml"], out) == 0
    assert "warning: route 'never' (root/1) is unreachable" in out.getvalue()


def test_explain_text_shows_walk_and_messages() -> None:
    """explain (text) shows failed matchers, the matched route and the rendered subject."""
    out = io.StringIO()
    code = explain_command([str(RULES)], {"alertname": "HostDown", "instance": "node-1",
                                          "severity": "critical"},
                           {"summary": "node-1 unreachable"}, "text", out)
    text = out.getvalue()
    assert code == 0
    assert 'FAIL service="billing"  (service = <missing, matched as "">)' in text
    assert "root (default): severity=critical audiences=ops channels=email" in text
    assert "[firing] subject: [FIRING:critical] HostDown on node-1" in text
    assert "[resolved] subject: [RESOLVED] HostDown on node-1" in text


def test_explain_json_for_scripts() -> None:
    """explain (json) is one JSON document with matched routes and per-recipient messages."""
    out = io.StringIO()
    code = explain_command([str(RULES)], {"alertname": "BillingDown", "service": "billing",
                                          "severity": "page"}, {}, "json", out)
    doc = json.loads(out.getvalue())
    assert code == 0
    (route,) = doc["matched_routes"]
    assert (route["route_id"], route["name"], route["severity"]) == ("root/0", "billing",
                                                                     "critical")
    (rec,) = route["recipients"]
    assert rec["locale"] == "fr"
    (email,) = rec["channels"]
    assert email["address"] == "astreinte@example.fr"
    assert email["messages"]["resolved"]["subject"] == "[RÉSOLU] BillingDown sur billing"
    skipped = [w for w in doc["walk"] if not w["evaluated"]]
    assert [w["route_id"] for w in skipped] == ["root/1"]


def test_explain_with_invalid_rules_exits_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invalid rules: explain prints the problems (JSON errors document) and exits 1."""
    monkeypatch.chdir(BROKEN)
    out = io.StringIO()
    assert explain_command(["unknown-key.yaml"], {}, {}, "json", out) == 1
    assert json.loads(out.getvalue())["errors"][0]["line"] == 12
