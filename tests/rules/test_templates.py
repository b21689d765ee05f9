"""Template rendering: locales and fallbacks, phases, escaping, strictness, date filter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.errors import RuleError
from router.models import Alert
from router.rules import RenderError, RuleSet
from tests.rules.helpers import load_text

HEADER = """\
defaults: {locale: en}
audiences:
  a:
    contacts:
      - {id: en, name: En, email: en@example.com}
      - {id: fr, name: Fr, email: fr@example.com, locale: fr-CA, timezone: Europe/Paris}
      - {id: de, name: De, email: de@example.com, locale: de}
templates:
  t:
    fallback_locale: en
    email:
      en:
        subject: "{{ phase | upper }} {{ alert.labels.alertname }}"
        text: "since {{ alert.starts_at | date }} {{ alert.labels.nope }}|{{ meta.receiver }}"
        html: "<b>{{ alert.annotations.summary }}</b>"
      fr:
        subject: "ALERTE {{ alert.labels.alertname }} é"
        text: "depuis {{ alert.starts_at | date }}"
  strict:
    email:
      en: {subject: "x", text: "{{ alert.starts_at.oops }}"}
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
  routes:
    - matchers: [strict=yes]
      template: strict
"""

ALERT = Alert(labels={"alertname": "HostDown"}, annotations={"summary": "<down> & out"},
              status="firing", starts_at=datetime(2024, 5, 2, 14, 3, tzinfo=UTC), ends_at=None,
              generator_url="", fingerprint="f")


def _rules(tmp_path: Path) -> RuleSet:
    return load_text(tmp_path, "", header=HEADER)


def test_render_in_contact_locale_with_language_fallback(tmp_path: Path) -> None:
    """fr-CA uses the 'fr' messages; dates are shown in the contact's zone and language."""
    rules = _rules(tmp_path)
    (d,) = rules.evaluate(ALERT.labels)
    fr = rules.audiences["a"].contacts[1]
    msg = rules.render(d, ALERT, fr, "email", "firing", {})
    assert msg.subject == "ALERTE HostDown é"
    assert msg.text == "depuis 2 mai 2024 à 16:03 (Europe/Paris)\n"
    assert msg.html is None


def test_render_falls_back_to_template_fallback_locale(tmp_path: Path) -> None:
    """A 'de' contact gets the template's fallback_locale (en)."""
    rules = _rules(tmp_path)
    (d,) = rules.evaluate(ALERT.labels)
    de = rules.audiences["a"].contacts[2]
    msg = rules.render(d, ALERT, de, "email", "resolved", {"receiver": "r"})
    assert msg.subject == "RESOLVED HostDown"
    assert msg.text == "since 2 May 2024 14:03 UTC |r\n"


def test_html_is_autoescaped_text_is_not(tmp_path: Path) -> None:
    """The html field escapes values; missing labels read as empty strings."""
    rules = _rules(tmp_path)
    (d,) = rules.evaluate(ALERT.labels)
    msg = rules.render(d, ALERT, rules.audiences["a"].contacts[0], "email", "firing", {})
    assert msg.html == "<b>&lt;down&gt; &amp; out</b>\n"


def test_undefined_attribute_is_a_render_error(tmp_path: Path) -> None:
    """StrictUndefined: an unknown attribute of a documented field raises RenderError."""
    rules = _rules(tmp_path)
    (d,) = rules.evaluate({"strict": "yes"})
    with pytest.raises(RenderError, match="strict"):
        rules.render(d, ALERT, rules.audiences["a"].contacts[0], "email", "firing", {})


def test_unknown_channel_at_render_is_a_render_error(tmp_path: Path) -> None:
    """Rendering for a channel the template lacks raises RenderError, not KeyError."""
    rules = _rules(tmp_path)
    (d,) = rules.evaluate(ALERT.labels)
    with pytest.raises(RenderError):
        rules.render(d, ALERT, rules.audiences["a"].contacts[0], "sms", "firing", {})


def test_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    """The sandbox refuses private attributes at run time (RenderError)."""
    header = HEADER.replace("{{ alert.starts_at.oops }}", "{{ alert.labels.__class__.__mro__ }}")
    rules = load_text(tmp_path, "", header=header)
    (d,) = rules.evaluate({"strict": "yes"})
    with pytest.raises(RenderError):
        rules.render(d, ALERT, rules.audiences["a"].contacts[0], "email", "firing", {})


def test_unknown_top_level_field_is_a_load_error(tmp_path: Path) -> None:
    """Using an undocumented top-level name fails at load time, at the template's line."""
    header = HEADER.replace("{{ meta.receiver }}", "{{ receiver }}")
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, "", header=header)
    (p,) = info.value.problems
    assert "unknown field 'receiver'" in p.message
    assert p.line == 14


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ alert.oops }}", "unknown field 'alert.oops' (fields of alert: annotations, ends_at, "),
    ("{{ route.title }}", "unknown field 'route.title' (fields of route: id, name)"),
    ("{{ incident.etaa }}", "unknown field 'incident.etaa' — did you mean 'eta'? (fields of "),
    ("{% for a in incident.firing %}{{ a.instance }}{% endfor %}",
     "unknown field 'a.instance' (fields of a: annotations, ends_at, "),
])
def test_unknown_attribute_is_a_load_error(tmp_path: Path, source: str, expected: str) -> None:
    """An undocumented attribute of a context object fails at load time, at its line."""
    header = HEADER.replace("{{ alert.starts_at.oops }}", source)
    with pytest.raises(RuleError) as info:
        load_text(tmp_path, "", header=header)
    (p,) = info.value.problems
    assert expected in p.message
    assert p.line == 21


def test_documented_attributes_load(tmp_path: Path) -> None:
    """Documented attributes (and any label or annotation key) are accepted."""
    header = HEADER.replace("{{ alert.starts_at.oops }}", (
        "{{ alert.labels.anything }}{{ incident.eta }}{{ route.name }}{{ recipient.locale }}"
        "{% for a in incident.alerts %}{{ a.labels.instance }}{% endfor %}"))
    load_text(tmp_path, "", header=header)


def test_fallback_locale_must_exist(tmp_path: Path) -> None:
    """A template without a message in its fallback locale is rejected at load."""
    header = HEADER.replace("fallback_locale: en", "fallback_locale: es")
    with pytest.raises(RuleError, match="fallback_locale 'es'"):
        load_text(tmp_path, "", header=header)


@pytest.mark.parametrize(("locale", "fmt", "expected"), [
    ("en-US", "day_time", "May 2, 10:03 AM"),
    ("en-GB", "day_time", "2 May, 10:03"),
    ("en-US", "date", "May 2, 2024"),
    ("fr", "day_time", "2 mai 10:03"),
    ("en-US", "time", "10:03 AM"),  # a plain space before AM: GSM-7, not CLDR's U+202F
    ("zz-ZZ", "day", "May 2"),  # an unknown locale: its language, else English
    ("fr", "%d/%m à %Hh%M", "02/05 à 10h03"),  # strftime as before
    ("fr", None, "2 mai 2024 à 10:03 (America/New_York)"),  # the default, unchanged
])
def test_date_formats_per_locale(locale: str, fmt: str | None, expected: str) -> None:
    """Named date formats follow the locale's CLDR data; strftime and defaults stay."""
    from router.rules.templates import format_date

    assert format_date(datetime(2024, 5, 2, 14, 3, tzinfo=UTC), locale, "America/New_York",
                       fmt) == expected


def test_unknown_date_format_is_a_render_error() -> None:
    """A format that is neither strftime nor a named format says which names exist."""
    from router.rules.templates import format_date

    with pytest.raises(RenderError, match=r"unknown date format 'dd/mm'.*day_time"):
        format_date(datetime(2024, 5, 2, 14, 3, tzinfo=UTC), "en", "UTC", "dd/mm")
