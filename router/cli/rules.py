"""``tocsin rules check|test|diff|import-alertmanager``: the rule commands.

:func:`register` adds their parsers; each ``*_command`` function writes to ``out`` and
returns the exit status (:mod:`router.cli.base`: 0 ok, 1 errors, 2 usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, TextIO

from router.authoring.explain import explain_alert, format_text
from router.cli import rules_import
from router.cli.base import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Commands, command, group
from router.errors import Problem, RuleError
from router.rules.loader import load_rules
from router.rules.problems import forget_sources, format_problem
from router.rules.ruleset import RuleSet

__all__ = ["check_command", "diff_command", "explain_command", "import_alertmanager_command",
           "register", "test_files_command"]


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def register(commands: Commands) -> None:
    """Add ``rules`` and its subcommands to the ``tocsin`` parser."""
    rule_commands = group(
        commands,
        "rules",
        help="check rule files, or see how they route an alert",
        description="Work with routing rule files (YAML) without running the service.",
        epilog=(
            "examples:\n"
            "  tocsin rules check rules/\n"
            "  tocsin rules test rules/ --labels alertname=DiskFull severity=warning"
        ),
        missing=("tocsin rules: a subcommand is required (check, test, diff or "
                 "import-alertmanager); see 'tocsin rules --help'"),
    )
    check = command(
        rule_commands,
        "check",
        help="validate rule files (positioned errors, exit 1 when invalid)",
        description=(
            "Validate rule files and folders strictly: unknown keys, bad matchers,\n"
            "unknown audiences/templates/channels. Errors are printed as FILE:LINE:COL."
        ),
        epilog=(
            "examples:\n  tocsin rules check rules/\n"
            "  tocsin rules check rules/a.yaml rules/b.yaml"
        ),
        run=_check,
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="rule file or folder")

    test = command(
        rule_commands,
        "test",
        help="run rule test files, or explain how one alert is routed (--labels)",
        description=(
            "Without --labels: run the rule test files at PATH (PATH/tests/*.yaml, a\n"
            "tests/ folder or test files): one line per case, a diff per failed\n"
            "expectation, then 'N passed, M failed'; exit 1 when a case fails.\n\n"
            "With --labels: evaluate the rule set at PATH for one alert given by its\n"
            "labels (and annotations): the route tree walk, decisions, rendered messages."
        ),
        epilog=(
            "examples:\n"
            "  tocsin rules test rules/\n"
            "  tocsin rules test rules/ --labels alertname=HostDown severity=critical\n"
            "  tocsin rules test rules/ --labels alertname=DiskFull "
            "--annotations summary='disk 95% full' --format json"
        ),
        run=_test,
    )
    test.add_argument("paths", nargs="+", metavar="PATH", help="rule file or folder")
    test.add_argument("--labels", nargs="+", action="extend", type=_key_value, default=[],
                      metavar="NAME=VALUE", help="alert labels")
    test.add_argument("--annotations", nargs="+", action="extend", type=_key_value,
                      default=[], metavar="NAME=VALUE", help="alert annotations")
    test.add_argument("--format", choices=("text", "json"), default="text",
                      help="output format (default: text)")
    test.add_argument("--at", metavar="TIME", default=None,
                      help="clock time of the alert and of the quiet-hours decision, "
                           "ISO 8601 (e.g. 2024-05-02T14:03:00Z); default: now")

    diff = command(
        rule_commands,
        "diff",
        help="show which alerts change route, audience, channel or severity",
        description=(
            "List the routes whose identity (name, else matchers path) changes from OLD\n"
            "to NEW and, with --state, the open incidents whose route identity changes\n"
            "(they stay open and resolve normally; a re-sent alert opens a new one).\n"
            "With --alerts: evaluate every alert of FILE.jsonl (one Alertmanager alert per\n"
            "line, or a bare label set) with the OLD and the NEW rule set and list the\n"
            "alerts whose matched routes, audiences, channels or severity differ, grouped\n"
            "by change.\n"
            "Exit 0 when both rule sets are valid (changed or not), 1 otherwise."
        ),
        epilog=(
            "examples:\n"
            "  git worktree add /tmp/main main\n"
            "  tocsin rules diff /tmp/main/rules rules/ --alerts alerts.jsonl\n"
            "  tocsin rules diff /tmp/main/rules rules/ --state sqlite:///var/lib/tocsin/tocsin.db"
        ),
        run=_diff,
    )
    diff.add_argument("old", metavar="OLD", help="rule file or folder before the change")
    diff.add_argument("new", metavar="NEW", help="rule file or folder after the change")
    diff.add_argument("--alerts", metavar="FILE.jsonl",
                      help="alerts to evaluate, one JSON object per line")
    diff.add_argument("--state", metavar="STATE_URL", dest="state_url",
                      help="also list the open incidents of this state database "
                           "(sqlite:///PATH, read only) whose route identity changes")
    diff.add_argument("--format", choices=("text", "json"), default="text",
                      help="output format (default: text)")
    diff.add_argument("--all", action="store_true", dest="show_all",
                      help="list every changed alert (default: 5 examples per change)")

    rules_import.register(rule_commands, run=_import)  # rules import-alertmanager


def _check(args: argparse.Namespace) -> int:
    return check_command(list(args.paths), sys.stdout)


def _test(args: argparse.Namespace) -> int:
    if args.labels:
        return explain_command(
            list(args.paths), dict(args.labels), dict(args.annotations), args.format,
            sys.stdout, at=args.at,
        )
    code = test_files_command(list(args.paths), sys.stdout)
    if code is not None:
        return code
    args.command_parser.print_usage(sys.stderr)
    sys.stderr.write("tocsin rules test: no rule test files found (PATH/tests/"
                     "*.yaml, or files with 'cases:'); give --labels NAME=VALUE "
                     "... to explain one alert\n")
    return EXIT_USAGE


def _diff(args: argparse.Namespace) -> int:
    return diff_command(args.old, args.new, args.alerts, args.format, sys.stdout,
                        show_all=args.show_all, state_url=args.state_url)


def _import(args: argparse.Namespace) -> int:
    return import_alertmanager_command(args.config, args.output, sys.stdout, sys.stderr,
                                       include_template=args.template)


def _print_problems(problems: Sequence[Problem], out: TextIO) -> None:
    forget_sources()
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
    """Validate rule files; print every problem (errors and warnings), a line per contact
    file (rows, valid, invalid, duplicates, reachable per channel), then the summary.
    0 ok, 1 errors (a contact file over its ``max_invalid`` is one)."""
    rules = _load(paths, out)
    if rules is None:
        return EXIT_FAILURE
    for audience in rules.audiences.values():
        for s in audience.sources:
            reach = ", ".join(f"{ch} {n}" for ch, n in s.reachable)
            out.write(f"contacts of '{audience.name}': {s.path}: {s.rows} row(s), {s.valid} "
                      f"valid, {s.invalid} invalid ({s.unreachable} skipped), "
                      f"{s.duplicates} duplicate(s), {s.selected} selected; reachable: "
                      f"{reach}\n")
    out.write(
        f"ok: {len(rules.source_files)} file(s), {len(rules.routes)} route(s), "
        f"{len(rules.audiences)} audience(s), {len(rules.templates)} template(s), "
        f"{len(rules.warnings)} warning(s)\n"
    )
    return EXIT_OK


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
        return EXIT_USAGE
    rules = _load(paths, out) if fmt == "text" else _load_quiet(paths, out)
    if rules is None:
        return EXIT_FAILURE
    doc = explain_alert(rules, labels, annotations, now=now)
    if fmt == "json":
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(format_text(doc))
    return EXIT_FAILURE if _has_render_error(doc) else EXIT_OK


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
    from dataclasses import asdict

    from router.authoring.diff import (
        diff_alerts,
        format_diff,
        format_identity,
        open_incidents,
        read_alerts,
        route_identity_changes,
    )
    from router.errors import ConfigError, StoreError
    from router.store import sqlite_url

    sets: list[RuleSet] = []
    for label, path in (("OLD", old), ("NEW", new)):
        try:
            sets.append(load_rules([path]))
        except RuleError as exc:
            out.write(f"{label} rule set {path} is invalid:\n")
            _print_problems(exc.problems, out)
            return EXIT_FAILURE
    changes = route_identity_changes(sets[0], sets[1])
    incidents = None
    if state_url is not None:
        try:
            path, _ = sqlite_url(state_url)
            if not Path(path).is_file():
                raise ConfigError(f"no state database at {path}")
            incidents = open_incidents(path, sets[1], changes)
        except (ConfigError, StoreError) as exc:
            out.write(f"cannot read the open incidents of {state_url}: {exc}\n")
            return EXIT_FAILURE
    extra: dict[str, object] = {"route_identity_changes": [asdict(c) for c in changes]}
    if incidents is not None:
        extra["open_incidents_changing_route"] = [asdict(i) for i in incidents]
    if fmt == "text":
        format_identity(changes, incidents, out)
    if alerts_file is None:
        if fmt == "json":
            out.write(json.dumps(extra, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    alerts, problems = read_alerts(Path(alerts_file))
    if problems:
        _print_problems(problems, out)
        return EXIT_FAILURE
    groups, changed = diff_alerts(sets[0], sets[1], alerts)
    format_diff(groups, changed, len(alerts), out, fmt=fmt, show_all=show_all, extra=extra)
    return EXIT_OK


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
        return EXIT_FAILURE
    try:
        result = import_alertmanager(text, path, include_template=include_template)
    except AlertmanagerConfigError as exc:
        forget_sources()
        for p in exc.problems:
            err.write(format_problem(p) + "\n")
        err.write(f"{path}: not a valid Alertmanager configuration "
                  f"({len(exc.problems)} error(s)); nothing written\n")
        return EXIT_FAILURE
    if output is None:
        out.write(result.rules_yaml)
    else:
        try:
            Path(output).write_text(result.rules_yaml, encoding="utf-8")
        except OSError as exc:
            err.write(f"{output}: error: cannot write the rule file: {exc}\n")
            return EXIT_FAILURE
    err.write(result.format_report())
    if output is not None:
        err.write(f"wrote {output}; check it with: tocsin rules check {output}\n")
    return EXIT_OK
