"""The ``tocsin`` command line (also ``python -m router``).

Commands: ``serve``, ``rules check``, ``rules test``, ``version``. Exit status: 0 ok,
1 failure (invalid config or rules, failed run), 2 usage error (bad arguments).
The rule commands are implemented in :mod:`router.cli.rules`; this module only parses
arguments and delegates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from router import __version__

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_FORMATTER = argparse.RawDescriptionHelpFormatter


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    """The whole argument tree (exposed for tests and documentation)."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        prog="tocsin",
        formatter_class=_FORMATTER,
        description="Tocsin routes alerts (Alertmanager webhooks, Kafka) to people, by rule files.",
        epilog=(
            "examples:\n"
            "  tocsin serve --config deploy/local/tocsin.yaml\n"
            "  tocsin rules check rules/\n"
            "  tocsin rules test rules/ --labels alertname=HostDown severity=critical\n"
            "\nRun 'tocsin COMMAND --help' for the options of a command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tocsin {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the service (webhook intake, routing, delivery)",
        formatter_class=_FORMATTER,
        description=(
            "Run Tocsin: listen for Alertmanager webhooks, route alerts with the rule files,\n"
            "deliver through the outbox. SIGTERM or SIGINT drains and exits 0.\n\n"
            "Config: the YAML file (optional; TOCSIN_CONFIG when --config is absent), then\n"
            "environment overrides: TOCSIN_ + key path, nested keys joined by '__'\n"
            "(TOCSIN_LISTEN, TOCSIN_SMTP__HOST, TOCSIN_WEBHOOK__BEARER_TOKEN, ...).\n"
            "Relative paths resolve against the current directory."
        ),
        epilog=(
            "examples:\n"
            "  tocsin serve --config deploy/local/tocsin.yaml\n"
            "  TOCSIN_LISTEN=0.0.0.0:9095 TOCSIN_SMTP__HOST=mail.example.com tocsin serve"
        ),
    )
    serve.add_argument("--config", "-c", metavar="FILE", type=Path,
                       help="service config file (YAML); default: built-in defaults + env")

    rules = commands.add_parser(
        "rules",
        help="check rule files, or see how they route an alert",
        formatter_class=_FORMATTER,
        description="Work with routing rule files (YAML) without running the service.",
        epilog=(
            "examples:\n"
            "  tocsin rules check rules/\n"
            "  tocsin rules test rules/ --labels alertname=DiskFull severity=warning"
        ),
    )
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    check = rule_commands.add_parser(
        "check",
        help="validate rule files (positioned errors, exit 1 when invalid)",
        formatter_class=_FORMATTER,
        description=(
            "Validate rule files and folders strictly: unknown keys, bad matchers,\n"
            "unknown audiences/templates/channels. Errors are printed as FILE:LINE:COL."
        ),
        epilog=(
            "examples:\n  tocsin rules check rules/\n"
            "  tocsin rules check rules/a.yaml rules/b.yaml"
        ),
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="rule file or folder")

    test = rule_commands.add_parser(
        "test",
        help="run rule test files, or explain how one alert is routed (--labels)",
        formatter_class=_FORMATTER,
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

    diff = rule_commands.add_parser(
        "diff",
        help="show which alerts change route, audience, channel or severity",
        formatter_class=_FORMATTER,
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

    from router.cli.rules_import import add_import_parser

    add_import_parser(rule_commands, _FORMATTER)  # rules import-alertmanager

    from router.cli.deliveries import add_parsers

    add_parsers(commands, _FORMATTER)  # deliveries/intake retry, push vapid-keys
    from router.cli.state import add_parser as add_state_parser

    add_state_parser(commands, _FORMATTER)  # state backup
    commands.add_parser(
        "version",
        help="print the version",
        formatter_class=_FORMATTER,
        description="Print the Tocsin version.",
        epilog="example:\n  tocsin version",
    )
    return parser, test


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tocsin`` console script; returns the exit status."""
    parser, test_parser = _build()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help/--version, 2 for usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "serve":
        return _serve(args.config)
    if args.command == "version":
        print(f"tocsin {__version__}")
        return EXIT_OK
    if args.command in ("deliveries", "intake", "push"):
        from router.cli.deliveries import run

        code = run(args)
        return EXIT_USAGE if code is None else code
    if args.command == "state":
        from router.cli.state import run as run_state

        return run_state(args)
    if args.command == "rules":
        if args.rules_command == "check":
            from router.cli.rules import check_command

            return check_command(list(args.paths), sys.stdout)
        if args.rules_command == "test":
            from router.cli.rules import explain_command, test_files_command

            if not args.labels:
                code = test_files_command(list(args.paths), sys.stdout)
                if code is not None:
                    return code
                test_parser.print_usage(sys.stderr)
                sys.stderr.write("tocsin rules test: no rule test files found (PATH/tests/"
                                 "*.yaml, or files with 'cases:'); give --labels NAME=VALUE "
                                 "... to explain one alert\n")
                return EXIT_USAGE
            return explain_command(
                list(args.paths), dict(args.labels), dict(args.annotations), args.format,
                sys.stdout, at=args.at,
            )
        if args.rules_command == "diff":
            from router.cli.rules import diff_command

            return diff_command(args.old, args.new, args.alerts, args.format, sys.stdout,
                                show_all=args.show_all, state_url=args.state_url)
        if args.rules_command == "import-alertmanager":
            from router.cli.rules import import_alertmanager_command

            return import_alertmanager_command(args.config, args.output, sys.stdout,
                                               sys.stderr, include_template=args.template)
        sys.stderr.write("tocsin rules: a subcommand is required (check, test, diff or "
                         "import-alertmanager); "
                         "see 'tocsin rules --help'\n")
        return EXIT_USAGE
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _serve(config_path: Path | None) -> int:
    from router.config import load_command_config
    from router.errors import ConfigError
    from router.service import run_service

    try:
        config = load_command_config(config_path, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin serve: {exc}\n")
        return EXIT_FAILURE
    try:
        return asyncio.run(run_service(config))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return EXIT_FAILURE
