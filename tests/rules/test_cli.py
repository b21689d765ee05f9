"""The rule commands: check output format and exit codes, explain in text and JSON."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from router.authoring.explain import message_doc
from router.cli.rules import check_command, explain_command
from router.models import RenderedMessage

RULES = Path(__file__).parents[2] / "rules"
BROKEN = Path(__file__).parent / "broken"


def test_check_ok_on_shipped_rules() -> None:
    """The shipped example rules are valid: exit 0 and a summary line; their one warning is
    the note that SMS answers need a two-way origination number (billing asks for them)."""
    out = io.StringIO()
    assert check_command([str(RULES)], out) == 0
    *_, summary = out.getvalue().splitlines()
    assert re.match(r"ok: \d+ file\(s\), \d+ route\(s\), .*, 1 warning\(s\)$", summary)
    warnings = [line for line in out.getvalue().splitlines() if ": warning: " in line]
    assert len(warnings) == 1
    assert "route 'billing' (root/2) asks for an acknowledgement by SMS" in warnings[0]


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
    assert (route["name"], route["severity"]) == ("billing", "critical")
    (rec,) = route["recipients"]
    assert rec["locale"] == "fr"
    email = next(ch for ch in rec["channels"] if ch["channel"] == "email")
    assert email["address"] == "astreinte@example.fr"
    assert email["messages"]["resolved"]["subject"] == "[RÉSOLU] BillingDown sur billing"
    skipped = [w["name"] for w in doc["walk"] if not w["evaluated"]]
    assert skipped == ["database"]  # after billing matched without continue


def test_explain_with_invalid_rules_exits_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invalid rules: explain prints the problems (JSON errors document) and exits 1."""
    monkeypatch.chdir(BROKEN)
    out = io.StringIO()
    assert explain_command(["unknown-key.yaml"], {}, {}, "json", out) == 1
    assert json.loads(out.getvalue())["errors"][0]["line"] == 12


def test_explain_says_why_and_uses_at() -> None:
    """The walk says why each node matched, failed or decided; --at sets the alert's time."""
    out = io.StringIO()
    code = explain_command([str(RULES)], {"alertname": "X", "team": "db"}, {}, "json", out,
                           at="2024-05-02T14:03:00Z")
    doc = json.loads(out.getvalue())
    assert code == 0
    assert doc["at"] == "2024-05-02T14:03:00Z"
    whys = {w["name"]: w["why"] for w in doc["walk"]}
    assert whys["default"] == "matched; a child route matched, so the child decides"
    assert whys["billing"] == 'no match: service="billing" failed (service missing, read as "")'
    assert whys["database"] == "matched; it has no children, so this route decides"
    (route,) = doc["matched_routes"]
    msg = route["recipients"][0]["channels"][0]["messages"]["firing"]
    assert "2 mai 2024 à 16:03" in msg["text"]


def test_explain_rejects_a_bad_time() -> None:
    """--at with something that is not ISO 8601 is a usage error (exit 2)."""
    out = io.StringIO()
    assert explain_command([str(RULES)], {"a": "b"}, {}, "text", out, at="yesterday") == 2
    assert "invalid time 'yesterday'" in out.getvalue()


def test_sms_message_shows_length_encoding_and_segments() -> None:
    """An SMS message in an explanation carries its length, GSM-7/UCS-2 and segment count."""
    gsm = message_doc("sms", RenderedMessage(subject="", text="Panne: service web HS\n"))
    assert gsm["sms"] == {"length": 21, "encoding": "GSM-7", "units": 21, "segments": 1}
    ucs = message_doc("sms", RenderedMessage(subject="", text="Panne « web » " + "x" * 60))
    assert (ucs["sms"]["encoding"], ucs["sms"]["segments"]) == ("UCS-2", 2)
    assert "sms" not in message_doc("email", RenderedMessage(subject="s", text="t"))
