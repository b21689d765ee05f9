"""Run rule test files: evaluate and plan each case with the real code, compare, report.

Each case goes through :meth:`RuleSet.evaluate` and the service's own planner
(:func:`router.planner.plan`), so "channels per recipient" and the rendered messages are
exactly what the service would queue. Output reads like a test runner: one line per
case, a positioned explanation (with a diff for texts) per failed expectation, and the
summary line ``N passed, M failed``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import structlog.testing

from router.authoring.testfile import (
    DEFAULT_AT,
    MESSAGE_FIELDS,
    CaseModel,
    MessageExpect,
    TestFile,
    load_test_file,
    parse_time,
)
from router.errors import Problem, RuleError
from router.fingerprint import fingerprint as alert_fingerprint
from router.models import Alert, Contact, IntakeRecord, NewDelivery, Phase, RenderedMessage
from router.models import RouteDecision as Decision
from router.rules.loader import load_rules
from router.rules.problems import did_you_mean, format_problem
from router.rules.quiet import QuietVerdict, format_local, quiet_verdict
from router.rules.ruleset import Audience, RuleSet
from router.sms import analyse
from router.yamlsrc import Path_

__all__ = ["CaseResult", "Failure", "run_case", "run_test_files"]

#: Where an expectation's field is in the rendered message (push title/body).
_SLOT = {"subject": "subject", "text": "text", "html": "html", "title": "subject",
         "body": "text"}


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed expectation, positioned at its key in the test file."""

    file: str
    line: int
    col: int
    what: str
    detail: str

    def render(self) -> str:
        """``file:line:col: what`` then the indented detail."""
        head = f"{self.file}:{self.line}:{self.col}: {self.what}"
        if not self.detail:
            return head
        return head + "\n" + "\n".join("    " + ln for ln in self.detail.splitlines())


@dataclass(slots=True)
class CaseResult:
    """The outcome of one case."""

    name: str
    line: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every expectation held."""
        return not self.failures


class _TzRules:
    """A rule-set view whose contacts all live in one time zone (a case's ``timezone``)."""

    def __init__(self, rules: RuleSet, timezone: str) -> None:
        self._rules = rules
        self.audiences: Mapping[str, Audience] = {
            name: replace(a, contacts=tuple(replace(c, timezone=timezone) for c in a.contacts))
            for name, a in rules.audiences.items()
        }

    def render(self, decision: Decision, alert: Alert, contact: Contact, channel: str,
               phase: Phase, meta: Mapping[str, str]) -> RenderedMessage:
        return self._rules.render(decision, alert, contact, channel, phase, meta)


def _alert(case: CaseModel) -> tuple[Alert, datetime]:
    at = parse_time(case.at) if case.at else DEFAULT_AT
    spec = case.alert
    starts = parse_time(spec.starts_at) if spec.starts_at else at
    ends: datetime | None = parse_time(spec.ends_at) if spec.ends_at else None
    if spec.status == "resolved" and ends is None:
        ends = at
    alert = Alert(labels=dict(spec.labels), annotations=dict(spec.annotations),
                  status=spec.status, starts_at=starts, ends_at=ends,
                  generator_url=spec.generator_url,
                  fingerprint=alert_fingerprint(spec.labels))
    return alert, at


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _text_diff(expected: str, actual: str) -> str:
    lines = difflib.unified_diff(expected.rstrip("\n").split("\n"),
                                 actual.rstrip("\n").split("\n"),
                                 "expected", "actual", lineterm="", n=2)
    return "\n".join(lines)


class _Checker:
    """Collects failures for one case, positioned via the test file's marks."""

    def __init__(self, tf: TestFile, index: int, result: CaseResult) -> None:
        self.tf = tf
        self.base: Path_ = ("cases", index, "expect")
        self.result = result

    def fail(self, path: Path_, what: str, detail: str = "", *, key: bool = True) -> None:
        m = self.tf.src.mark((*self.base, *path), key=key)
        self.result.failures.append(Failure(self.tf.src.path, m.line, m.col, what, detail))

    def equal(self, path: Path_, what: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            self.fail(path, f"{what} differ",
                      f"expected: {_show(expected)}\nactual:   {_show(actual)}")


def _route_label(d: Decision) -> str:
    """How a test file refers to a route: its identity (its name, else its matchers path)."""
    return d.route_id


#: A route position (``root/1/0``): not an identity, it changes when a route is inserted.
_POSITION = re.compile(r"root(?:/\d+)*")


def _check_route_refs(check: _Checker, refs: Sequence[str], rules: RuleSet) -> None:
    """Each entry of ``routes:`` must be a route's name (or, unnamed, its matchers path)."""
    for i, ref in enumerate(refs):
        if ref in rules.routes:
            continue
        names = [r.name for r in rules.routes.values() if r.name]
        hint = did_you_mean(ref, names)
        if _POSITION.fullmatch(ref):
            hint = (" (routes are referred to by name: a position such as 'root/1' changes "
                    "when a route is inserted above; give the route a 'name:')")
        check.fail(("routes", i), f"no route is called '{ref}'{hint}", key=False)


def run_case(tf: TestFile, index: int, rules: RuleSet) -> CaseResult:
    """Evaluate, plan and check one case of ``tf`` against ``rules``."""
    case = tf.model.cases[index]
    line = tf.src.mark(("cases", index)).line
    result = CaseResult(case.name, line)
    check = _Checker(tf, index, result)
    alert, at = _alert(case)
    decisions = rules.evaluate(alert.labels)
    view: Any = _TzRules(rules, case.timezone) if case.timezone else rules
    from router.planner import plan  # the service's planner (it imports router.rules)

    record = IntakeRecord(source="rules-test", received_at=at, alert=alert,
                          meta={"receiver": "tocsin-rules-test"})
    # The planner logs unreachable contacts as warnings; a test run reports through its
    # own expectations (channels per recipient), so keep its output clean.
    with structlog.testing.capture_logs():
        deliveries = plan(record, decisions, view)
    exp = case.expect

    if exp.routes is not None:
        _check_route_refs(check, exp.routes, rules)
        labels = [_route_label(d) for d in decisions]
        ok = len(exp.routes) == len(decisions) and all(
            e == d.route_id for e, d in zip(exp.routes, decisions, strict=False))
        if not ok:
            check.fail(("routes",), "matched routes differ",
                       f"expected: {_show(exp.routes)}\nactual:   {_show(labels)}")
    if exp.severity is not None:
        got = [d.severity for d in decisions]
        if any(s != exp.severity for s in got):
            check.fail(("severity",), "severity differs",
                       f"expected: {_show(exp.severity)}\nactual:   "
                       + ", ".join(f"{_route_label(d)}: {_show(d.severity)}" for d in decisions))
    if exp.audiences is not None:
        auds: list[str] = []
        for d in decisions:
            auds.extend(a for a in d.audiences if a not in auds)
        check.equal(("audiences",), "audiences", exp.audiences, auds)
    if exp.channels is not None:
        per: dict[str, list[str]] = {}
        for dl in deliveries:
            chans = per.setdefault(dl.contact_id, [])
            if dl.channel not in chans:
                chans.append(dl.channel)
        check.equal(("channels",), "channels per recipient", exp.channels, per)
    for j, mexp in enumerate(exp.messages or []):
        _check_messages(check, ("messages", j), mexp, deliveries)
    if exp.quiet_hours_hold is not None or exp.held_until is not None:
        verdicts = _quiet_verdicts(rules, view.audiences, decisions, deliveries, at)
        _check_quiet(check, exp.quiet_hours_hold, exp.held_until, verdicts)
    for dl in deliveries:
        if dl.failed_reason:
            check.fail((), f"message to {dl.contact_id} on {dl.channel} failed to render",
                       dl.failed_reason)
    return result


#: (contact id, route label) → the quiet-hours verdict of the notices planned for it.
_Verdicts = dict[tuple[str, str], QuietVerdict]


def _quiet_verdicts(rules: RuleSet, audiences: Mapping[str, Audience],
                    decisions: Sequence[Decision], deliveries: Sequence[NewDelivery],
                    at: datetime) -> _Verdicts:
    """The verdict for every recipient that has a message, with the engine's function."""
    by_route = {d.route_id: d for d in decisions}
    out: _Verdicts = {}
    for dl in deliveries:
        decision = by_route[dl.route_id]
        key = (dl.contact_id, _route_label(decision))
        if key in out:
            continue
        contact = next(c for c in audiences[dl.audience].contacts if c.id == dl.contact_id)
        out[key] = quiet_verdict(rules.incident, decision.policy, decision.severity, contact,
                                 at)
    return out


def _when(instant: datetime, timezone: str) -> str:
    utc = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{format_local(instant, timezone)} ({utc})"


def _check_quiet(check: _Checker, hold: bool | Mapping[str, bool] | None,
                 until: str | Mapping[str, str] | None, verdicts: _Verdicts) -> None:
    """``quiet_hours_hold`` / ``held_until``: for every recipient, or per contact id."""
    for key, expected in (("quiet_hours_hold", hold), ("held_until", until)):
        if expected is None:
            continue
        table = expected if isinstance(expected, Mapping) else None
        if table is None and not verdicts:
            check.fail((key,), "no message is planned, so quiet hours cannot be checked")
            continue
        wanted = table.keys() if table is not None else sorted({c for c, _ in verdicts})
        for contact_id in wanted:
            path: Path_ = (key, contact_id) if table is not None else (key,)
            value = table[contact_id] if table is not None else expected
            mine = [(route, v) for (c, route), v in verdicts.items() if c == contact_id]
            if not mine:
                have = ", ".join(sorted({c for c, _ in verdicts})) or "none"
                check.fail(path, f"no message for recipient {contact_id}",
                           f"recipients with messages: {have}")
                continue
            for route, verdict in mine:
                who = f"the message to {contact_id} (route {route})"
                if isinstance(value, bool):
                    if verdict.held != value:
                        state = "hold" if verdict.held else "do not hold"
                        check.fail(path, f"quiet hours {state} {who}, expected "
                                   f"quiet_hours_hold: {str(value).lower()}",
                                   verdict.describe())
                    continue
                assert isinstance(value, str)
                _check_held_until(check, path, who, parse_time(value), verdict)


def _check_held_until(check: _Checker, path: Path_, who: str, expected: datetime,
                      verdict: QuietVerdict) -> None:
    actual = verdict.held_until
    if actual is None:
        check.fail(path, f"quiet hours do not hold {who}", verdict.describe())
    elif actual != expected:
        check.fail(path, f"{who} is held until another time",
                   f"expected: {_when(expected, verdict.timezone)}\n"
                   f"actual:   {_when(actual, verdict.timezone)}")


def _select(mexp: MessageExpect, deliveries: Sequence[NewDelivery]) -> list[NewDelivery]:
    out = []
    for dl in deliveries:
        if mexp.recipient is not None and dl.contact_id != mexp.recipient:
            continue
        if mexp.channel is not None and dl.channel != mexp.channel:
            continue
        if mexp.locale is not None and mexp.locale not in (dl.locale, dl.locale.split("-")[0]):
            continue
        out.append(dl)
    return out


def _check_messages(check: _Checker, path: Path_, mexp: MessageExpect,
                    deliveries: Sequence[NewDelivery]) -> None:
    selected = _select(mexp, deliveries)
    if not selected:
        wanted = ", ".join(f"{k}={v}" for k, v in (("recipient", mexp.recipient),
                                                    ("channel", mexp.channel),
                                                    ("locale", mexp.locale)) if v)
        have = ", ".join(sorted({f"{d.contact_id}/{d.channel}/{d.locale}" for d in deliveries}))
        check.fail(path, f"no message for {wanted or 'any recipient'}",
                   f"messages planned (recipient/channel/locale): {have or 'none'}")
        return
    for dl in selected:
        if dl.failed_reason:
            continue  # reported once per case
        who = f"{dl.contact_id} on {dl.channel}"
        msg = dl.message
        if mexp.sms_segments is not None:
            info = analyse(msg.text.rstrip("\n"))
            if info.segments != mexp.sms_segments:
                check.fail((*path, "sms_segments"), f"SMS to {who} is {info.segments} "
                           f"segment(s), expected {mexp.sms_segments}",
                           f"{info.chars} characters, {info.encoding}: {_show(msg.text)}")
        for fname in MESSAGE_FIELDS:
            expected = getattr(mexp, fname)
            if expected is None:
                continue
            actual = getattr(msg, _SLOT[fname]) or ""
            if expected.rstrip("\n") != actual.rstrip("\n"):
                detail = (f"expected: {_show(expected)}\nactual:   {_show(actual)}"
                          if "\n" not in (expected.rstrip("\n") + actual.rstrip("\n"))
                          else _text_diff(expected, actual))
                check.fail((*path, fname), f"{fname} of the message to {who} differs", detail)
        for kind, table in (("contains", mexp.contains), ("not_contains", mexp.not_contains)):
            for fname, fragments in (table or {}).items():
                actual = getattr(msg, _SLOT[fname]) or ""
                for k, fragment in enumerate(fragments):
                    present = fragment in actual
                    if present != (kind == "contains"):
                        verb = "lacks" if kind == "contains" else "must not contain"
                        check.fail((*path, kind, fname, k),
                                   f"{fname} of the message to {who} {verb} {_show(fragment)}",
                                   f"{fname}:\n" + "\n".join(
                                       ("| " + ln).rstrip()
                                       for ln in actual.rstrip("\n").split("\n")),
                                   key=False)


def _load_rules_cached(paths: tuple[str, ...], cache: dict[tuple[str, ...],
                       RuleSet | list[Problem]]) -> RuleSet | list[Problem]:
    key = tuple(str(Path(p).resolve()) for p in paths)
    if key not in cache:
        try:
            cache[key] = load_rules(list(paths))
        except RuleError as exc:
            cache[key] = exc.problems
    return cache[key]


def run_test_files(files: Sequence[Path], out: TextIO) -> int:
    """Run every case of ``files``; print results and ``N passed, M failed``. 0 ok, 1 not."""
    passed = failed = 0
    broken = False
    cache: dict[tuple[str, ...], RuleSet | list[Problem]] = {}
    for path in files:
        out.write(f"{path}\n")
        tf, problems = load_test_file(path)
        if tf is None:
            broken = True
            for p in problems:
                out.write(format_problem(p) + "\n")
            continue
        rules = _load_rules_cached(tf.rule_paths, cache)
        if not isinstance(rules, RuleSet):
            out.write(f"  the rule set {', '.join(tf.rule_paths)} is invalid:\n")
            for p in rules:
                out.write(format_problem(p) + "\n")
            failed += len(tf.model.cases)
            continue
        for i in range(len(tf.model.cases)):
            res = run_case(tf, i, rules)
            if res.passed:
                passed += 1
                out.write(f"  ok    {res.name}\n")
                continue
            failed += 1
            out.write(f"  FAIL  {res.name}  ({path}:{res.line})\n")
            for f in res.failures:
                out.write("\n".join("        " + ln for ln in f.render().splitlines()) + "\n")
    if broken:
        out.write("some test files are invalid (see above)\n")
    out.write(f"{passed} passed, {failed} failed\n")
    return 1 if failed or broken else 0
