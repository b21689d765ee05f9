"""What every ``tocsin`` command shares: the exit codes and the one way to register.

Exit status, for every command: :data:`EXIT_OK` (0) ok, :data:`EXIT_FAILURE` (1) a
failure (invalid config or rules, failed run), :data:`EXIT_USAGE` (2) a usage error
(bad or missing arguments).

A module of this package adds its commands with :func:`command` (a command that runs)
and :func:`group` (a command with subcommands): the parser records its handler, and
:func:`router.cli.main.main` runs the handler of the command given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeAlias

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "FORMATTER", "Commands", "Handler",
           "command", "group", "usage_error"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

FORMATTER = argparse.RawDescriptionHelpFormatter

#: Where commands are added (what ``add_subparsers`` returns).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: Runs a parsed command and returns its exit status.
Handler = Callable[[argparse.Namespace], int]


def command(commands: Commands, name: str, *, help: str, description: str,
            epilog: str | None = None, run: Handler) -> argparse.ArgumentParser:
    """Add the command ``name`` run by ``run``; return its parser (to add arguments).

    ``args.command_parser`` is the parser of the command given (for its usage line).
    """
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, formatter_class=FORMATTER, description=description, epilog=epilog)
    parser.set_defaults(run=run, command_parser=parser)
    return parser


def group(commands: Commands, name: str, *, help: str, description: str,
          epilog: str | None = None, missing: str) -> Commands:
    """Add the command ``name`` with subcommands; return where to add them.

    Given without a subcommand, it writes ``missing`` to stderr and exits with
    :data:`EXIT_USAGE`.
    """
    parser = command(commands, name, help=help, description=description, epilog=epilog,
                     run=lambda _args: usage_error(missing))
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def usage_error(message: str) -> int:
    """Write ``message`` (one line) to stderr; return :data:`EXIT_USAGE`."""
    sys.stderr.write(message + "\n")
    return EXIT_USAGE
