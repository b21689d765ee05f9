"""The ``tocsin`` command line (also ``python -m router``).

Commands: ``serve`` (:mod:`router.cli.serve`), ``rules check|test|diff|import-alertmanager``
(:mod:`router.cli.rules`), ``audiences plan`` (:mod:`router.cli.audiences`),
``deliveries retry``, ``intake retry``, ``push vapid-keys``
(:mod:`router.cli.deliveries`), ``state backup`` (:mod:`router.cli.state`),
``incidents ack`` (:mod:`router.cli.incidents`), ``contacts check|forget``
(:mod:`router.cli.contacts`, :mod:`router.cli.forget`), ``dev reply|sns-identity``
(:mod:`router.cli.dev`) and ``version``. Each module registers its commands through
:mod:`router.cli.base`, which also holds the exit codes: 0 ok, 1 failure (invalid
config or rules, failed run), 2 usage error (bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from router import __version__
from router.cli import audiences, contacts, deliveries, dev, incidents, rules, serve, state
from router.cli.base import EXIT_OK, EXIT_USAGE, FORMATTER, command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole argument tree (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="tocsin",
        formatter_class=FORMATTER,
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
    serve.register(commands)
    rules.register(commands)
    audiences.register(commands)  # audiences plan: a fan-out plan before it goes
    contacts.register(commands)  # contacts check, contacts forget
    deliveries.register(commands)  # deliveries/intake retry, push vapid-keys
    state.register(commands)  # state backup
    incidents.register(commands)  # incidents ack (through the running service's API)
    dev.register(commands)  # dev reply, dev sns-identity: the local world
    command(commands, "version", help="print the version", description="Print the Tocsin version.",
            epilog="example:\n  tocsin version", run=_version)
    return parser


def _version(_args: argparse.Namespace) -> int:
    print(f"tocsin {__version__}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tocsin`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help/--version, 2 for usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    code: int = run(args)
    return code
