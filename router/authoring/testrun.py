"""Run rule test files: rehearse each case through the service's pipeline, compare, report.

Each case is rehearsed by :mod:`router.authoring.rehearsal`: its alerts go through the
service's intake, incident engine and scheduler on a fake clock, and the expectations
are checked against the outbox rows the service writes, planned by
:func:`router.incidents.flush.plan_flush` (the one planner). So "channels per
recipient" and the rendered messages are exactly what the service would queue: the
first notice of a firing alert (``group_wait`` after the case's time), the resolved
notice of a resolved one, or each phase of an incident life given as ``steps``.

Output reads like a test runner: one line per case, a positioned explanation (with a
diff for texts) per failed expectation, and the summary line ``N passed, M failed``.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from router.authoring.rehearsal import Step, rehearse, settle_s
from router.authoring.testfile import (
    DEFAULT_AT,
    MESSAGE_FIELDS,
    AlertSpec,
    CaseModel,
    ExpectModel,
    MessageExpect,
    TestFile,
    load_test_file,
    parse_time,
)
from router.errors import Problem, RuleError
from router.fingerprint import fingerprint as alert_fingerprint
from router.models import Alert, Delivery
from router.models import RouteDecision as Decision
from router.rules.loader import load_rules
from router.rules.problems import did_you_mean, format_problem
from router.rules.quiet import QuietVerdict, format_local, quiet_verdict
from router.rules.ruleset import RuleSet
from router.sms import analyse
from router.yamlsrc import Path_

__all__ = ["CaseResult", "Failure", "case_deliveries", "run_case", "run_test_files"]

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


def _in_timezone(rules: RuleSet, timezone: str) -> RuleSet:
    """``rules`` with every contact living in ``timezone`` (a case's ``timezone``)."""
    clone = copy.copy(rules)
    clone.audiences = {
        name: replace(a, contacts=tuple(replace(c, timezone=timezone) for c in a.contacts))
        for name, a in rules.audiences.items()
    }
    return clone


def _alert(spec: AlertSpec, at: datetime) -> Alert:
    """The alert of ``spec`` as received at ``at`` (its default ``startsAt``)."""
    starts = parse_time(spec.starts_at) if spec.starts_at else at
    ends: datetime | None = parse_time(spec.ends_at) if spec.ends_at else None
    if spec.status == "resolved" and ends is None:
        ends = at
    return Alert(labels=dict(spec.labels), annotations=dict(spec.annotations),
                 status=spec.status, starts_at=starts, ends_at=ends,
                 generator_url=spec.generator_url,
                 fingerprint=alert_fingerprint(spec.labels))


def _resolved(alert: Alert, at: datetime) -> Alert:
    return replace(alert, status="resolved", ends_at=at)


@dataclass(frozen=True, slots=True)
class _Check:
    """One ``expect`` of a case, where it is in the file, and the step it covers."""

    base: Path_
    expect: ExpectModel
    step: int
    alerts: tuple[Alert, ...]  # every alert received up to that step


def _life(case: CaseModel, rules: RuleSet) -> tuple[list[Step], list[_Check]]:
    """The steps of the rehearsal of ``case`` and its expectations."""
    at = parse_time(case.at) if case.at else DEFAULT_AT
    received = [_alert(spec, at) for spec in case.alert_specs]
    if case.steps is None:
        assert case.expect is not None  # the model gives one or the other
        firing = [a for a in received if a.status == "firing"]
        resolved = [a for a in received if a.status == "resolved"]
        if not resolved:  # the first notice
            return [Step(at, tuple(firing))], [_Check(("expect",), case.expect, 0,
                                                      tuple(received))]
        # The resolved notice: the alert fired first (when it started, or long enough
        # before ``at`` for its first notice to go out), then resolves at ``at``.
        wait = timedelta(seconds=settle_s(rules, resolved) * 2)
        fire_at = min([a.starts_at for a in resolved] + [at - wait])
        before = firing + [replace(a, status="firing", ends_at=None) for a in resolved]
        return ([Step(fire_at, tuple(before)), Step(at, tuple(received))],
                [_Check(("expect",), case.expect, 1, tuple(received))])
    steps: list[Step] = []
    checks: list[_Check] = []
    known = list(received)
    if case.steps[0].at > 0:
        steps.append(Step(at, tuple(received)))
    for k, model in enumerate(case.steps):
        when = at + timedelta(seconds=model.at)
        changes: list[Alert] = []
        for i in model.resolve:
            known[i] = _resolved(known[i], when)
            changes.append(known[i])
        joined = [_alert(spec, when) for spec in model.alerts]
        known.extend(joined)
        if k == 0 and model.at == 0:
            changes = received + changes
        steps.append(Step(when, tuple(changes + joined), acknowledge=model.acknowledge))
        checks.append(_Check(("steps", k, "expect"), model.expect, len(steps) - 1,
                             tuple(known)))
    return steps, checks


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _text_diff(expected: str, actual: str) -> str:
    lines = difflib.unified_diff(expected.rstrip("\n").split("\n"),
                                 actual.rstrip("\n").split("\n"),
                                 "expected", "actual", lineterm="", n=2)
    return "\n".join(lines)


class _Checker:
    """Collects failures for one expectation, positioned via the test file's marks."""

    def __init__(self, tf: TestFile, base: Path_, result: CaseResult) -> None:
        self.tf = tf
        self.base = base
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


def case_deliveries(tf: TestFile, index: int, rules: RuleSet) -> list[list[Delivery]]:
    """The outbox rows the service writes for case ``index``, per rehearsal step."""
    case = tf.model.cases[index]
    view = _in_timezone(rules, case.timezone) if case.timezone else rules
    steps, _checks = _life(case, view)
    return rehearse(view, steps)


def run_case(tf: TestFile, index: int, rules: RuleSet) -> CaseResult:
    """Rehearse one case of ``tf`` through the service's pipeline and check it."""
    case = tf.model.cases[index]
    line = tf.src.mark(("cases", index)).line
    result = CaseResult(case.name, line)
    view = _in_timezone(rules, case.timezone) if case.timezone else rules
    contact_ids = {c.id for audience in rules.audiences.values() for c in audience.contacts}
    check = _Checker(tf, ("cases", index), result)
    for k, step in enumerate(case.steps or ()):
        if step.acknowledge is not None and step.acknowledge not in contact_ids:
            check.fail(("steps", k, "acknowledge"),
                       f"no contact '{step.acknowledge}' in the rule set's audiences",
                       key=False)
    if result.failures:
        return result
    steps, checks = _life(case, view)
    windows = rehearse(view, steps)
    for item in checks:
        check = _Checker(tf, ("cases", index, *item.base), result)
        _check_expect(check, item.expect, view, item.alerts, windows[item.step])
    return result


def _decisions(rules: RuleSet, alerts: Sequence[Alert]) -> list[Decision]:
    """The routes the alerts match, in order, each once."""
    out: dict[str, Decision] = {}
    for alert in alerts:
        for d in rules.evaluate(alert.labels):
            out.setdefault(d.route_id, d)
    return list(out.values())


def _check_expect(check: _Checker, exp: ExpectModel, rules: RuleSet,
                  alerts: Sequence[Alert], deliveries: Sequence[Delivery]) -> None:
    decisions = _decisions(rules, alerts)
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
        verdicts = _quiet_verdicts(rules, decisions, deliveries)
        _check_quiet(check, exp.quiet_hours_hold, exp.held_until, verdicts)
    for dl in deliveries:
        if dl.status == "failed":
            check.fail((), f"message to {dl.contact_id} on {dl.channel} failed to render",
                       dl.last_error or "")


#: (contact id, route label) → the quiet-hours verdict of the notices planned for it.
_Verdicts = dict[tuple[str, str], QuietVerdict]


def _quiet_verdicts(rules: RuleSet, decisions: Sequence[Decision],
                    deliveries: Sequence[Delivery]) -> _Verdicts:
    """The verdict for every recipient that has a message, with the engine's function,
    at the instant the scheduler planned the message."""
    by_route = {d.route_id: d for d in decisions}
    out: _Verdicts = {}
    for dl in deliveries:
        decision = by_route.get(dl.route_id)
        audience = rules.audiences.get(dl.audience)
        if decision is None or audience is None:
            continue
        key = (dl.contact_id, _route_label(decision))
        contact = next((c for c in audience.contacts if c.id == dl.contact_id), None)
        if key in out or contact is None:
            continue
        out[key] = quiet_verdict(rules.incident, decision.policy, decision.severity, contact,
                                 dl.created_at)
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


def _select(mexp: MessageExpect, deliveries: Sequence[Delivery]) -> list[Delivery]:
    out = []
    for dl in deliveries:
        if mexp.phase is not None and dl.phase != mexp.phase:
            continue
        if mexp.recipient is not None and dl.contact_id != mexp.recipient:
            continue
        if mexp.channel is not None and dl.channel != mexp.channel:
            continue
        if mexp.locale is not None and mexp.locale not in (dl.locale, dl.locale.split("-")[0]):
            continue
        out.append(dl)
    return out


def _check_messages(check: _Checker, path: Path_, mexp: MessageExpect,
                    deliveries: Sequence[Delivery]) -> None:
    selected = _select(mexp, deliveries)
    if not selected:
        wanted = ", ".join(f"{k}={v}" for k, v in (("recipient", mexp.recipient),
                                                    ("channel", mexp.channel),
                                                    ("locale", mexp.locale),
                                                    ("phase", mexp.phase)) if v)
        have = ", ".join(sorted({f"{d.contact_id}/{d.channel}/{d.locale}/{d.phase}"
                                 for d in deliveries}))
        check.fail(path, f"no message for {wanted or 'any recipient'}",
                   f"messages planned (recipient/channel/locale/phase): {have or 'none'}")
        return
    for dl in selected:
        if dl.status == "failed":
            continue  # reported once per expectation
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
