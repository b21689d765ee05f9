"""Rule test files (``rules/tests/*.yaml``): their strict shape and how they are found.

A test file lists cases; each case gives one alert (labels, annotations, status), an
optional clock time and recipient time zone, and what the rule set must do with it: the
first notice of a firing alert, the resolved notice of a resolved one. A case may
instead describe a short incident life: ``alerts`` received at the case's time, then
``steps`` at offsets from it (alerts joining, resolving, a follow-up falling due), each
with what it must send (:mod:`router.authoring.rehearsal` runs it through the service).
The file is read with positions (:mod:`router.yamlsrc`) so that a failing
expectation, or a mistake in the test file itself, points at its line. See
docs/rules.md, "Rule test files".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator

from router.errors import Problem
from router.rules.durations import Duration
from router.rules.problems import validation_problems
from router.rules.time_intervals import check_timezone
from router.strict import Strict
from router.yamlsrc import SourceFile, read_yaml

__all__ = [
    "DEFAULT_AT",
    "MESSAGE_FIELDS",
    "AlertSpec",
    "CaseModel",
    "ExpectModel",
    "MessageExpect",
    "StepModel",
    "TestFile",
    "TestFileModel",
    "find_test_files",
    "load_test_file",
    "parse_time",
]

#: The clock time of a case that gives no ``at`` (fixed, so rendered dates are stable).
DEFAULT_AT = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
#: Fields of a rendered message that expectations may name (push title/body are the
#: rendered subject/text).
MESSAGE_FIELDS = ("subject", "text", "html", "title", "body")
MessageField = Literal["subject", "text", "html", "title", "body"]


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``2024-05-02T14:03:00Z``, ``2024-05-02 16:03+02:00``), aware UTC.

    A time without an offset is read as UTC.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid time '{value}': expected ISO 8601 such as "
                         "2024-05-02T14:03:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class AlertSpec(Strict):
    """The alert of a case (Alertmanager's shape, lower-case keys)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    starts_at: str | None = None
    ends_at: str | None = None
    generator_url: str = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time(v)
        return v


class MessageExpect(Strict):
    """Expectations on the rendered message(s) selected by recipient/channel/locale."""

    recipient: str | None = None
    channel: str | None = None
    locale: str | None = None
    #: Only the messages of this phase (first notice ``firing``, ``update``,
    #: ``follow_up``, ``resolved``, ``summary``; for a route with ``ack:``, ``reminder``,
    #: ``escalation`` and ``acknowledged``).
    phase: Literal["firing", "update", "follow_up", "resolved", "summary", "reminder",
                   "escalation", "acknowledged"] | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None  # push: the title (rendered as the subject)
    body: str | None = None  # push: the body (rendered as the text)
    sms_segments: int | None = Field(default=None, ge=1)  # SMS parts the text is billed as
    contains: dict[MessageField, list[str]] | None = None
    not_contains: dict[MessageField, list[str]] | None = None


class ExpectModel(Strict):
    """What a case expects; every key is optional, only given keys are checked.

    ``quiet_hours_hold`` and ``held_until`` apply to every recipient when given as one
    value, or per contact id when given as a mapping.
    """

    routes: list[str] | None = None
    severity: str | None = None
    audiences: list[str] | None = None
    channels: dict[str, list[str]] | None = None
    messages: list[MessageExpect] | None = None
    quiet_hours_hold: bool | dict[str, bool] | None = None
    held_until: str | dict[str, str] | None = None

    @field_validator("held_until")
    @classmethod
    def _held_until(cls, v: str | dict[str, str] | None) -> str | dict[str, str] | None:
        for value in ([v] if isinstance(v, str) else (v or {}).values()):
            parse_time(value)
        return v


class StepModel(Strict):
    """One moment of an incident life: ``at`` after the case's time, alerts join
    (``alerts``) or resolve (``resolve``: indexes into the case's alerts, then the
    alerts the earlier steps added), a contact answers (``acknowledge``); ``expect``
    covers what is sent from ``at`` until the next step (the last step: until what it
    changed is notified)."""

    at: Duration
    alerts: list[AlertSpec] = Field(default_factory=list)
    resolve: list[int] = Field(default_factory=list)
    #: a contact id: at ``at`` that contact answers every open incident that asked it
    #: (a route with ``ack:``), as its SMS reply would
    acknowledge: str | None = Field(default=None, min_length=1)
    expect: ExpectModel = Field(default_factory=lambda: ExpectModel())

    @field_validator("at")
    @classmethod
    def _offset(cls, v: float) -> float:
        if v < 0:
            raise ValueError("a step's 'at' is an offset after the case's time (0s or more)")
        return v


class CaseModel(Strict):
    """One test case: ``alert`` and ``expect``, or ``alerts`` and ``steps``."""

    name: str = Field(min_length=1)
    alert: AlertSpec | None = None
    alerts: list[AlertSpec] | None = Field(default=None, min_length=1)
    at: str | None = None
    timezone: str | None = None
    expect: ExpectModel | None = None
    steps: list[StepModel] | None = Field(default=None, min_length=1)

    @field_validator("at")
    @classmethod
    def _at(cls, v: str | None) -> str | None:
        if v is not None:
            parse_time(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone(v)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if (self.alert is None) == (self.alerts is None):
            raise ValueError("a case gives either 'alert' (one alert) or 'alerts' (a list)")
        if (self.expect is None) == (self.steps is None):
            raise ValueError("a case gives either 'expect' (the first notice) or 'steps' "
                             "(an incident life)")
        if self.steps is not None:
            known = len(self.alerts or [self.alert])
            last = 0.0
            for k, step in enumerate(self.steps):
                if step.at < last:
                    raise ValueError(f"steps[{k}].at comes before the step above it: steps "
                                     "are in time order")
                last = step.at
                for i in step.resolve:
                    if not 0 <= i < known:
                        raise ValueError(f"steps[{k}].resolve: no alert {i} (the case has "
                                         f"{known} alert(s) so far, numbered from 0)")
                known += len(step.alerts)
        return self

    @property
    def alert_specs(self) -> list[AlertSpec]:
        """The case's alerts (``alert`` is a list of one)."""
        return list(self.alerts) if self.alerts is not None else [self.alert]  # type: ignore[list-item]


class TestFileModel(Strict):
    """A rule test file: the rule set it tests (default: the folder above) and cases."""

    rules: list[str] | None = None
    cases: list[CaseModel] = Field(min_length=1)

    @field_validator("rules", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


@dataclass(frozen=True, slots=True)
class TestFile:
    """A loaded test file: its model, positions, and the rule paths it tests."""

    __test__ = False  # not a pytest class

    path: Path
    model: TestFileModel
    src: SourceFile
    rule_paths: tuple[str, ...]


def load_test_file(path: Path) -> tuple[TestFile | None, list[Problem]]:
    """Read and validate one test file; problems are positioned in the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), 0, 0, f"cannot read test file: {exc}")]
    src, problems = read_yaml(str(path), text)
    if src is None or problems:
        return None, problems
    if not isinstance(src.data, dict):
        return None, [src.problem((), "a rule test file must be a mapping with 'cases:'")]
    try:
        model = TestFileModel.model_validate(src.data)
    except ValidationError as exc:
        return None, validation_problems(exc, src, TestFileModel)
    base = path.parent
    if model.rules is not None:
        rule_paths = tuple(str(_rel(base, p)) for p in model.rules)
    else:
        rule_paths = (str(base.parent),)
    return TestFile(path, model, src, rule_paths), []


def _rel(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(q for q in folder.iterdir()
                  if q.is_file() and q.suffix in (".yaml", ".yml"))


def find_test_files(paths: Sequence[str | Path]) -> list[Path]:
    """The test files designated by ``paths`` (empty when there are none).

    A folder with a ``tests/`` subfolder means the files in it (``tocsin rules test
    rules/``); a folder named ``tests`` means its own files; a file means itself when it
    has a top-level ``cases:`` key.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            if (p / "tests").is_dir():
                found.extend(_yaml_files(p / "tests"))
            elif p.name == "tests":
                found.extend(_yaml_files(p))
        elif p.is_file() and _has_cases(p):
            found.append(p)
    return found


def _has_cases(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith("cases:") for line in head.splitlines())
