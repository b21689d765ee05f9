"""Test helper: write rule files into a folder and load them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from router.rules import RuleSet, load_rules
from router.rules.tree import Route

__all__ = ["HEADER", "by_position", "load_text"]

#: Audiences a, b, c, d and a template `t` for email, for route-only tests.
HEADER = """\
audiences:
  a: {contacts: [{id: a, name: A, email: a@example.com}]}
  b: {contacts: [{id: b, name: B, email: b@example.com}]}
  c: {contacts: [{id: c, name: C, email: c@example.com}]}
  d: {contacts: [{id: d, name: D, email: d@example.com, locale: fr, timezone: Europe/Paris}]}
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ severity }}"}
"""


def load_text(folder: Path, route_yaml: str, *, header: str = HEADER) -> RuleSet:
    """Write HEADER + the dedented route YAML to folder/rules.yaml and load it."""
    (folder / "rules.yaml").write_text(header + textwrap.dedent(route_yaml), encoding="utf-8")
    return load_rules([folder])


def by_position(rules: RuleSet) -> dict[str, Route]:
    """Every route of ``rules`` by its position in the tree (``root``, ``root/0/2``)."""
    return {route.position: route for route in rules.routes.values()}
