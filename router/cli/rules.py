"""The rule commands behind ``tocsin rules check`` and ``tocsin rules test``.

The service's argparse CLI parses arguments and calls these; they write to ``out`` and
return the exit status (0 ok, 1 errors).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal, TextIO

from router.authoring.explain import explain_alert, format_text
from router.errors import Problem, RuleError
from router.rules.loader import load_rules
from router.rules.ruleset import RuleSet

__all__ = ["check_command", "diff_command", "explain_command", "format_problem",
           "import_alertmanager_command", "test_files_command"]


@lru_cache(maxsize=64)
def _source_lines(path: str) -> tuple[str, ...]:
    try:
        return tuple(Path(path).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def format_problem(problem: Problem) -> str:
    """``file:line:col: error: message`` plus the offending line and a caret."""
    text = str(problem)
    lines = _source_lines(problem.file) if problem.line else ()
    if 0 < problem.line <= len(lines):
        src = lines[problem.line - 1].expandtabs(1)
        caret = " " * max(problem.col - 1, 0) + "^"
        text += f"\n    {src}\n    {caret}"
    return text


def _print_problems(problems: Sequence[Problem], out: TextIO) -> None:
    _source_lines.cache_clear()
    for p in problems:
        out.write(format_problem(p) + "\n")


def _load(paths: Sequence[str], out: TextIO) -> RuleSet | None:
    try:
        rules = load_rules(paths)
    except RuleError as exc:
        _print_problems(exc.problems, out)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        warnings = len(exc.problems) - errors
        out.write(f"{errors} error(s), {warnings} warning(s)\n")
        return None
    _print_problems(rules.warnings, out)
    return rules


def check_command(paths: list[str], out: TextIO) -> int:
    """Validate rule files; print every problem (errors and warnings). 0 ok, 1 errors."""
    rules = _load(paths, out)
    if rules is None:
        return 1
    out.write(
        f"ok: {len(rules.source_files)} file(s), {len(rules.routes)} route(s), "
        f"{len(rules.audiences)} audience(s), {len(rules.templates)} template(s), "
        f"{len(rules.warnings)} warning(s)\n"
    )
    return 0


def explain_command(
    paths: list[str],
    labels: dict[str, str],
    annotations: dict[str, str],
    fmt: Literal["text", "json"],
    out: TextIO,
    *,
    at: str | None = None,
) -> int:
    """Explain how one alert is routed and rendered. 0 ok, 1 invalid rules or render error.

    ``at`` (ISO 8601) is the clock time of the alert (its start); default: now.
    """
    from router.authoring.testfile import parse_time

    try:
        now = parse_time(at) if at is not None else None
    except ValueError as exc:
        out.write(f"--at: {exc}\n")
        return 2
    rules = _load(paths, out) if fmt == "text" else _load_quiet(paths, out)
    if rules is None:
        return 1
    doc = explain_alert(rules, labels, annotations, now=now)
    if fmt == "json":
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(format_text(doc))
    return 1 if _has_render_error(doc) else 0


def _load_quiet(paths: Sequence[str], out: TextIO) -> RuleSet | None:
    """Load for JSON output: problems go out as one JSON document on failure."""
    try:
        return load_rules(paths)
    except RuleError as exc:
        out.write(json.dumps({"errors": [
            {"file": p.file, "line": p.line, "col": p.col, "severity": p.severity,
             "message": p.message} for p in exc.problems]}, indent=2, ensure_ascii=False)
            + "\n")
        return None


def _has_render_error(doc: Mapping[str, object]) -> bool:
    routes = doc.get("matched_routes")
    if not isinstance(routes, list):
        return False
    for r in routes:
        for rec in r["recipients"]:
            for ch in rec["channels"]:
                for msg in ch.get("messages", {}).values():
                    if "error" in msg:
                        return True
    return False


def test_files_command(paths: list[str], out: TextIO) -> int | None:
    """Run the rule test files designated by ``paths``; None when there are none.

    ``rules/`` means ``rules/tests/*.yaml`` (each file tests the rule set in the folder
    above it unless it says ``rules:``); a test file or a ``tests`` folder works too.
    """
    from router.authoring.testfile import find_test_files
    from router.authoring.testrun import run_test_files

    files = find_test_files(paths)
    if not files:
        return None
    return run_test_files(files, out)


def diff_command(old: str, new: str, alerts_file: str | None, fmt: Literal["text", "json"],
                 out: TextIO, *, show_all: bool = False, state_url: str | None = None) -> int:
    """Show the routes whose identity changes, the open incidents of ``state_url`` (read
    only) whose route identity changes, and which alerts of ``alerts_file`` change
    route/audience/channel/severity.

    0 when both rule sets load (whether or not something changed), 1 when a rule set, the
    alerts file or the state database is invalid.
    """
    import sqlite3
    from dataclasses import asdict

    from router.authoring.diff import (
        diff_alerts,
        format_diff,
        format_identity,
        open_incidents,
        read_alerts,
        route_identity_changes,
    )
    from router.errors import ConfigError
    from router.store import sqlite_url

    sets: list[RuleSet] = []
    for label, path in (("OLD", old), ("NEW", new)):
        try:
            sets.append(load_rules([path]))
        except RuleError as exc:
            out.write(f"{label} rule set {path} is invalid:\n")
            _print_problems(exc.problems, out)
            return 1
    changes = route_identity_changes(sets[0], sets[1])
    incidents = None
    if state_url is not None:
        try:
            path, _ = sqlite_url(state_url)
            if not Path(path).is_file():
                raise ConfigError(f"no state database at {path}")
            incidents = open_incidents(path, sets[1], changes)
        except (ConfigError, sqlite3.Error) as exc:
            out.write(f"cannot read the open incidents of {state_url}: {exc}\n")
            return 1
    extra: dict[str, object] = {"route_identity_changes": [asdict(c) for c in changes]}
    if incidents is not None:
        extra["open_incidents_changing_route"] = [asdict(i) for i in incidents]
    if fmt == "text":
        format_identity(changes, incidents, out)
    if alerts_file is None:
        if fmt == "json":
            out.write(json.dumps(extra, indent=2, ensure_ascii=False) + "\n")
        return 0
    alerts, problems = read_alerts(Path(alerts_file))
    if problems:
        _print_problems(problems, out)
        return 1
    groups, changed = diff_alerts(sets[0], sets[1], alerts)
    format_diff(groups, changed, len(alerts), out, fmt=fmt, show_all=show_all, extra=extra)
    return 0


def import_alertmanager_command(path: str, output: str | None, out: TextIO, err: TextIO,
                                *, include_template: bool = True) -> int:
    """Convert an Alertmanager config to a rule file (to ``output`` or ``out``).

    The report of what was not imported goes to ``err``. 0 ok, 1 when the input cannot be
    read or is not a valid Alertmanager configuration (positioned problems on ``err``).
    """
    from router.authoring.importer import AlertmanagerConfigError, import_alertmanager

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.write(f"{path}: error: cannot read the file: {exc}\n")
        return 1
    try:
        result = import_alertmanager(text, path, include_template=include_template)
    except AlertmanagerConfigError as exc:
        _source_lines.cache_clear()
        for p in exc.problems:
            err.write(format_problem(p) + "\n")
        err.write(f"{path}: not a valid Alertmanager configuration "
                  f"({len(exc.problems)} error(s)); nothing written\n")
        return 1
    if output is None:
        out.write(result.rules_yaml)
    else:
        try:
            Path(output).write_text(result.rules_yaml, encoding="utf-8")
        except OSError as exc:
            err.write(f"{output}: error: cannot write the rule file: {exc}\n")
            return 1
    err.write(result.format_report())
    if output is not None:
        err.write(f"wrote {output}; check it with: tocsin rules check {output}\n")
    return 0
