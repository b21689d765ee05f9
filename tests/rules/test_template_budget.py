"""Template renders have a time and an output budget; subjects are one capped line."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router.models import SUBJECT_MAX_CHARS, Alert, RenderedMessage
from router.rules import RenderError
from router.rules.templates import (
    CompiledMessage,
    CompiledTemplate,
    RenderBudget,
    RenderBudgetError,
    compile_field,
    render_budget,
    render_message,
    set_render_budget,
)
from tests.rules.helpers import load_text

NESTED = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
NESTED_SILENT = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture
def budget() -> Iterator[None]:
    """A 0.2 s / 10 000-character budget for the test, restored after."""
    before = render_budget()
    set_render_budget(RenderBudget(time_s=0.2, max_output_chars=10_000))
    yield
    set_render_budget(before)


def _template(text: str, subject: str | None = None) -> tuple[CompiledTemplate, CompiledMessage]:
    message = CompiledMessage(
        subject=compile_field(subject, html=False) if subject is not None else None,
        text=compile_field(text, html=False), html=None)
    return CompiledTemplate(name="big", fallback_locale=None,
                            channels={"email": {"en": message}}), message


def _render(text: str, context: dict[str, Any] | None = None) -> RenderedMessage:
    template, message = _template(text)
    return render_message(template, message, context or {})


def test_nested_loops_fail_quickly_with_the_budget_reason() -> None:
    """Reproducer: the nested range(100000) loops of the report fail within the default
    budget (they ran past 15 s on the event loop)."""
    started = time.monotonic()
    with pytest.raises(RenderBudgetError, match=r"template 'big'.*budget"):
        _render(NESTED)
    assert time.monotonic() - started < render_budget().time_s + 1.0


def test_loops_without_output_hit_the_time_budget(budget: None) -> None:
    """Loops that print nothing are stopped by the deadline, checked at every iteration."""
    started = time.monotonic()
    with pytest.raises(RenderBudgetError, match=r"template 'big' exceeded its 0\.2 s render"):
        _render(NESTED_SILENT)
    assert time.monotonic() - started < 1.0


def test_output_over_the_budget_fails(budget: None) -> None:
    """An output past max_output_chars fails, naming the budget, before it is all built."""
    with pytest.raises(RenderBudgetError, match="rendered output over 10000 characters"):
        _render("{% for a in range(1000) %}{{ a }} and more text{% endfor %}")


@pytest.mark.parametrize("source", [
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 7 ** 100000000 }}",
    "{{ 'a' | center(1000000000) }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'a'.ljust(1000000000) }}",
])
def test_one_huge_value_is_refused_before_it_is_built(budget: None, source: str) -> None:
    """Single operations that would allocate past the output budget fail at once."""
    started = time.monotonic()
    with pytest.raises(RenderBudgetError, match="over 10000 characters"):
        _render(source)
    assert time.monotonic() - started < 0.5


def test_runaway_recursion_is_a_render_error() -> None:
    """A macro calling itself forever is a RenderError, not a crash of the caller."""
    with pytest.raises(RenderError, match="nested too deep"):
        _render("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}")


def test_ordinary_loops_render_as_before(budget: None) -> None:
    """Loop variables, filters, else branches and recursive loops are unchanged."""
    text = ("{% for a in range(4) if a > 0 %}{{ loop.index }}{% else %}none{% endfor %}|"
            "{% for x in [[1, [2]], [3]] recursive %}{% if x is iterable %}{{ loop(x) }}"
            "{% else %}{{ x }}{% endif %}{% endfor %}|{{ 'ab' * 3 }}|{{ 2 ** 10 }}")
    assert _render(text).text == "123|123|ababab|1024\n"


def test_the_budget_holds_in_a_worker_thread(budget: None) -> None:
    """Renders in another thread (large flushes) are metered the same way."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _render(NESTED_SILENT)
        except RenderBudgetError as exc:
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1 and "render budget" in str(errors[0])


RULES = """\
defaults: {locale: en}
audiences:
  a:
    contacts: [{id: en, name: En, email: en@example.com}]
templates:
  t:
    email:
      en: {subject: "[{{ severity }}] {{ alert.labels.alertname }}", text: "ok"}
route:
  audiences: [a]
  template: t
  channels: {default: [email]}
"""


def test_a_900_kb_alertname_gives_a_capped_subject(tmp_path: Path) -> None:
    """Reproducer: a 900 KB alertname made a 900 KB Subject; now one line of at most
    SUBJECT_MAX_CHARS characters ending with an ellipsis."""
    rules = load_text(tmp_path, "", header=RULES)
    labels = {"alertname": "A" * 900_000}
    alert = Alert(labels=labels, annotations={}, status="firing",
                  starts_at=datetime(2024, 5, 2, tzinfo=UTC), ends_at=None,
                  generator_url="", fingerprint="f")
    (decision,) = rules.evaluate(labels)
    message = rules.render(decision, alert, rules.audiences["a"].contacts[0], "email",
                           "firing", {})
    assert len(message.subject) == SUBJECT_MAX_CHARS
    assert message.subject.endswith("A…") and message.subject.startswith("[")
    assert len(message.subject.encode()) < 998


def test_every_rendered_message_caps_its_subject() -> None:
    """Subjects built outside templates (render-failure placeholders) are capped too."""
    message = RenderedMessage(subject="[render failed] " + "B" * 900_000, text="")
    assert len(message.subject) == SUBJECT_MAX_CHARS and message.subject.endswith("…")
    assert RenderedMessage(subject="short", text="").subject == "short"


def test_rules_check_warns_about_a_template_over_its_budget(tmp_path: Path) -> None:
    """Loading rules renders each message with sample data: runaway loops are a warning
    at the message, found in a quarter of a second."""
    source = RULES.replace('text: "ok"', 'text: "' + NESTED_SILENT + '"')
    started = time.monotonic()
    rules = load_text(tmp_path, "", header=source)
    assert time.monotonic() - started < 5
    [warning] = [w for w in rules.warnings if "render budget" in w.message]
    assert warning.message == ("template 't' exceeded its 0.25 s render budget with "
                               "sample data (email, en)")
