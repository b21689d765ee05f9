"""Tocsin's own Prometheus alerting rules are valid, tested, and name real metrics."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from router import metrics
from tests.services.requirements import require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "tocsin-alerts.yaml"
TESTS = Path(__file__).parent / "tocsin-alerts.test.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
HINT = "install Debian's prometheus package (deploy/system-deps.sh) for promtool"


def _exposed_names() -> set[str]:
    """Every sample name Tocsin's /metrics can expose (counters with _total, ...)."""
    suffixes = {"counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created")}
    return {family.name + suffix
            for family in metrics.REGISTRY.collect()
            for suffix in suffixes.get(family.type, ("",))}


def _rules() -> list[dict[str, str]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_file() -> None:
    """promtool parses every expression and template of the rules file."""
    promtool = require_binary("promtool", HINT)
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    """Each alert fires on the failure it names and not on a healthy series."""
    promtool = require_binary("promtool", HINT)
    done = subprocess.run([promtool, "test", "rules", TESTS.name], cwd=TESTS.parent,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_tocsin_metric_in_the_rules_exists() -> None:
    """A renamed metric would silently disable an alert: each tocsin_* name used in an
    expression is one Tocsin exposes."""
    exposed = _exposed_names()
    used = {name for rule in _rules()
            for name in re.findall(r"\btocsin_[a-z0-9_]+", rule["expr"])}
    assert used, "no tocsin_* metric in the rules"
    assert used <= exposed, sorted(used - exposed)


def test_every_alert_has_a_runbook_section() -> None:
    """Each alert's description links to docs/operations.md#<alert>, which exists."""
    headings = {line.lstrip("#").strip().lower()
                for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
                if line.startswith("### ")}
    for rule in _rules():
        anchor = rule["alert"].lower()
        assert f"docs/operations.md#{anchor}" in rule["annotations"]["description"]
        assert anchor in headings, f"no '### {rule['alert']}' section in docs/operations.md"
