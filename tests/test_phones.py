"""Phone numbers are validated and normalised to E.164 when rule files load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from router.errors import RuleError
from router.phones import normalise_phone
from router.rules import load_rules

RULES = """\
templates:
  t:
    email:
      en: {{subject: s, text: t}}
audiences:
  oncall:
    contacts:
      - id: a
        name: A
        phone: "{phone}"
route:
  audiences: [oncall]
  template: t
  channels: {{default: [email]}}
"""


@pytest.mark.parametrize(("raw", "e164"), [
    ("+33612345678", "+33612345678"),
    ("+33 6 12 34 56 78", "+33612345678"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_normalise_valid(raw: str, e164: str) -> None:
    """Numbers written the way people write them become E.164."""
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize(("raw", "why"), [
    ("0612345678", "start with '+'"),
    ("+331", "too short"),
    ("+33 6 12", "not a valid number for FR"),
])
def test_normalise_invalid(raw: str, why: str) -> None:
    """Local formats, truncated and unassigned numbers are refused with a reason."""
    with pytest.raises(ValueError, match=re.escape(why)):
        normalise_phone(raw)


def test_contact_phone_normalised_at_load(tmp_path: Path) -> None:
    """A contact's spaced number is stored as E.164 in the loaded rule set."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(phone="+33 6 12 34 56 78"), encoding="utf-8")
    [contact] = load_rules([path]).audiences["oncall"].contacts
    assert contact.phone == "+33612345678"


def test_invalid_phone_reported_with_file_and_line(tmp_path: Path) -> None:
    """An invalid number is a rule error positioned at its line, not a dropped contact."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(phone="+33 6 12"), encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path])
    [problem] = info.value.problems
    assert (problem.file, problem.line) == (str(path), 10)
    assert "not a valid number for FR" in problem.message
