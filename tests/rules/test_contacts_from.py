"""Audiences read from contact files: relative paths, select, thresholds, positions."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from router.contacts import cache_stats
from router.errors import RuleError
from router.rules import load_rules

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contacts"

TEMPLATES = """\
templates:
  t:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "plan {{ recipient.attributes.plan }}"}
"""


def _rules(folder: Path, audiences: str, *, route_audience: str = "customers") -> Path:
    (folder / "contacts").mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(
        "audiences:\n" + textwrap.indent(textwrap.dedent(audiences), "  ") + TEMPLATES
        + f"route: {{audiences: [{route_audience}], template: t, channels: "
          "{default: [email]}}\n", encoding="utf-8")
    return folder


def _csv(folder: Path, text: str, name: str = "customers.csv") -> Path:
    (folder / "contacts").mkdir(exist_ok=True)
    path = folder / "contacts" / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_contacts_from_a_file_relative_to_the_rule_file(tmp_path: Path) -> None:
    """The file is found beside the rule file; inline contacts are kept too."""
    _csv(tmp_path, """\
        id,name,email,phone,plan
        a,Alice,alice@example.com,06 12 34 56 78,gold
        b,Bob,bob@example.com,,silver
        """)
    _rules(tmp_path, """\
        customers:
          contacts: [{id: ops, name: Ops, email: ops@example.com}]
          contacts_from: [{file: contacts/customers.csv, region: FR}]
        """)
    rules = load_rules([tmp_path])
    aud = rules.audiences["customers"]
    assert [c.id for c in aud.contacts] == ["ops", "a", "b"]
    assert aud.contacts[1].phone == "+33612345678"
    (report,) = aud.sources
    assert (report.path, report.rows, report.valid, report.selected) == (
        str(tmp_path / "contacts" / "customers.csv"), 2, 2, 2)
    assert dict(report.reachable) == {"email": 2, "sms": 1}
    assert [f[0] for f in rules.contact_files] == [report.path]


def test_select_takes_a_segment(tmp_path: Path) -> None:
    """select {plan: gold} keeps the gold customers; a list keeps any of its values."""
    _csv(tmp_path, """\
        id,name,email,plan
        a,Alice,alice@example.com,gold
        b,Bob,bob@example.com,silver
        c,Carl,carl@example.com,bronze
        """)
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv}]
          select: {plan: gold}
        best:
          contacts_from: [{file: contacts/customers.csv}]
          select: {plan: [gold, silver]}
        """)
    rules = load_rules([tmp_path])
    assert [c.id for c in rules.audiences["customers"].contacts] == ["a"]
    assert [c.id for c in rules.audiences["best"].contacts] == ["a", "b"]
    assert rules.audiences["customers"].sources[0].selected == 1


def test_an_unknown_select_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    """A select key that is no column of the file: positioned error, did you mean."""
    _csv(tmp_path, "id,name,email,plan\na,Alice,alice@example.com,gold\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv}]
          select: {plna: gold}
        """)
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'rules.yaml'}:4:14: error: select key 'plna' is not a column of "
        f"{tmp_path / 'contacts' / 'customers.csv'} — did you mean 'plan'? (its attribute "
        "columns: plan)"]


def test_bad_rows_are_warnings_under_the_threshold(tmp_path: Path) -> None:
    """One bad row in 2 with max_invalid 50%: a warning at the row, no source excerpt."""
    _csv(tmp_path, "id,name,email,timezone\na,Alice,alice@example.com,Mars/Base\n"
                   "b,Bob,bob@example.com,UTC\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv, max_invalid: 50%}]
        """)
    rules = load_rules([tmp_path])
    (warning,) = rules.warnings
    assert str(warning) == (
        f"{tmp_path / 'contacts' / 'customers.csv'}:2: warning: timezone: unknown time zone "
        "'Mars/Base': use an IANA name such as 'UTC' or 'Europe/Paris'; the default 'UTC' "
        "is used")
    assert warning.excerpt is False


def test_over_the_threshold_the_rule_set_is_refused(tmp_path: Path) -> None:
    """Too many bad rows (default 1%): an error at the contacts_from item, rows as warnings."""
    shutil.copy(FIXTURES / "bad-rows.csv", tmp_path / "bad-rows.csv")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: bad-rows.csv, region: FR}]
        """)
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    errors = [str(p) for p in info.value.problems if p.severity == "error"]
    assert errors == [
        f"{tmp_path / 'rules.yaml'}:3:28: error: contact file {tmp_path / 'bad-rows.csv'}: "
        "8 of 11 rows are invalid or duplicates (72.7%), over max_invalid 1% (audience "
        "'customers'): fix the file, or raise max_invalid"]
    assert sum(p.severity == "warning" for p in info.value.problems) == 9


def test_a_missing_file_or_column_is_an_error_at_the_item(tmp_path: Path) -> None:
    """No such file; a file without its id column: errors at the 'file' key."""
    shutil.copy(FIXTURES / "no-id.csv", tmp_path)
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/nowhere.csv}, {file: no-id.csv}]
        """)
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'rules.yaml'}:3:28: error: contact file "
        f"{tmp_path / 'contacts' / 'nowhere.csv'}: no such file",
        f"{tmp_path / 'rules.yaml'}:3:58: error: contact file {tmp_path / 'no-id.csv'} "
        "(line 1): missing required column(s) id (a contact file needs id, name and email "
        "and/or phone)"]


def test_duplicate_ids_across_sources_of_an_audience(tmp_path: Path) -> None:
    """An id already given inline or by an earlier file: warning with the first place."""
    _csv(tmp_path, "id,name,email\nops,Ops again,ops2@example.com\nx,X,x@example.com\n")
    _rules(tmp_path, """\
        customers:
          contacts: [{id: ops, name: Ops, email: ops@example.com}]
          contacts_from: [{file: contacts/customers.csv}]
        """)
    rules = load_rules([tmp_path])
    assert [c.id for c in rules.audiences["customers"].contacts] == ["ops", "x"]
    assert [str(p) for p in rules.warnings] == [
        f"{tmp_path / 'contacts' / 'customers.csv'}:2: warning: id: duplicate id 'ops' in "
        f"audience 'customers' (first at {tmp_path / 'rules.yaml'}:3); the row is skipped"]


def test_an_audience_needs_members(tmp_path: Path) -> None:
    """Neither contacts nor contacts_from: error; select without contacts_from: error."""
    _rules(tmp_path, """\
        customers: {description: nobody}
        """)
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    assert any("an audience needs 'contacts' or 'contacts_from'" in p.message
               for p in info.value.problems)


def test_attributes_reach_the_templates(tmp_path: Path) -> None:
    """recipient.attributes.plan renders the contact's column; a missing one is ''."""
    from datetime import UTC, datetime

    from router.models import Alert

    _csv(tmp_path, "id,name,email,plan\na,Alice,alice@example.com,gold\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv}]
        """)
    rules = load_rules([tmp_path])
    alert = Alert(labels={"alertname": "X"}, annotations={}, status="firing",
                  starts_at=datetime(2024, 1, 1, tzinfo=UTC), ends_at=None,
                  generator_url="", fingerprint="f")
    (decision,) = rules.evaluate(alert.labels)
    msg = rules.render(decision, alert, rules.audiences["customers"].contacts[0], "email",
                       "firing", {})
    assert msg.text.strip() == "plan gold"


def test_a_reload_with_unchanged_contact_files_does_not_read_them(tmp_path: Path) -> None:
    """Loading the same rule set twice reads its contact file once."""
    _csv(tmp_path, "id,name,email\na,Alice,alice@example.com\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv}]
        """)
    load_rules([tmp_path])
    reads = cache_stats()["reads"]
    again = load_rules([tmp_path])
    assert cache_stats()["reads"] == reads
    assert [c.id for c in again.audiences["customers"].contacts] == ["a"]


def test_an_audience_error_is_reported_first_not_a_missing_route(tmp_path: Path) -> None:
    """A bad contact in the file with the route: its own error, no 'no rule file defines
    route' from another file."""
    (tmp_path / "a-templates.yaml").write_text(TEMPLATES, encoding="utf-8")
    (tmp_path / "routes.yaml").write_text(textwrap.dedent("""\
        audiences:
          customers:
            contacts: [{id: a, name: A, email: not-an-address}]
        route: {audiences: [customers], template: t, channels: {default: [email]}}
        """), encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path])
    messages = [str(p) for p in info.value.problems]
    assert len(messages) == 1 and "invalid email address" in messages[0]
    assert messages[0].startswith(str(tmp_path / "routes.yaml"))


def test_an_unknown_quiet_hours_name_in_a_file_is_a_warning(tmp_path: Path) -> None:
    """A row naming quiet hours the rule set lacks: one warning per name, the audience's
    quiet hours apply instead."""
    _csv(tmp_path, "id,name,email,quiet_hours\na,A,a@example.com,nigths\n"
                   "b,B,b@example.com,nigths\nc,C,c@example.com,none\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv, max_invalid: 100%}]
        """)
    rules = load_rules([tmp_path])
    assert [str(p) for p in rules.warnings] == [
        f"{tmp_path / 'contacts' / 'customers.csv'}:2: warning: quiet_hours: unknown "
        "quiet_hours 'nigths' (here and in every row naming it): the audience's (none) "
        "applies"]
    assert [c.quiet_hours for c in rules.audiences["customers"].contacts] == [
        None, None, "none"]


def test_rules_check_prints_the_rows_without_their_personal_data(tmp_path: Path) -> None:
    """`tocsin rules check`: a bad row is a warning with its line, no quoted source line,
    then a line per contact file; exit 0 under the threshold."""
    import io

    from router.cli.rules import check_command

    _csv(tmp_path, "id,name,email,phone\r\na,Alice Secret,alice@example.com,+33 6 12\r\n"
                   "b,Bob,bob@example.com,\r\n")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv, max_invalid: 1}]
        """)
    out = io.StringIO()
    assert check_command([str(tmp_path)], out) == 0
    text = out.getvalue()
    csv_path = tmp_path / "contacts" / "customers.csv"
    assert text.splitlines()[0] == (
        f"{csv_path}:2: warning: phone: invalid phone number '+33 **12': not a valid "
        "number for FR (check the digits); still reachable by e-mail")
    assert "Alice Secret" not in text and "+33 6 12" not in text
    assert (f"contacts of 'customers': {csv_path}: 2 row(s), 1 valid, 1 invalid (0 skipped), "
            "0 duplicate(s), 2 selected; reachable: email 2, sms 0") in text


def test_defaults_max_invalid_applies_to_every_file(tmp_path: Path) -> None:
    """defaults.max_invalid: the rule set's threshold; a contacts_from item overrides it."""
    _csv(tmp_path, "id,name,email\na,A,not-an-address\nb,B,b@example.com\n")
    (tmp_path / "defaults.yaml").write_text("defaults: {max_invalid: 50%}\n", encoding="utf-8")
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv}]
        """)
    assert [c.id for c in load_rules([tmp_path]).audiences["customers"].contacts] == ["b"]
    _rules(tmp_path, """\
        customers:
          contacts_from: [{file: contacts/customers.csv, max_invalid: 0}]
        """)
    with pytest.raises(RuleError):
        load_rules([tmp_path])
