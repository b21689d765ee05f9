"""``tocsin contacts check``: validate contact files (CSV, YAML lists) row by row; and
``tocsin contacts forget`` (:mod:`router.cli.forget`): erase a person from the state store.

Every bad row is printed as ``file:line: column: why`` (personal data masked), then one
summary line per file (rows, valid, invalid, duplicates, reachable per channel). Exit 1
when a file cannot be used (unreadable, a required column missing) or has more bad rows
(invalid and duplicates) than ``--max-invalid`` (a count, or a percentage of its rows;
default 1%, the rule files' default); 0 otherwise; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import phonenumbers

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command, group
from router.cli.forget import register_forget
from router.contacts import (
    DEFAULT_MAX_INVALID,
    LoadedSource,
    SourceOptions,
    Threshold,
    load_source,
    parse_threshold,
)

__all__ = ["check_command", "register"]


def _threshold(text: str) -> Threshold:
    try:
        return parse_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _region(text: str) -> str:
    if text.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise argparse.ArgumentTypeError(f"unknown phone region '{text}': use an ISO 3166 "
                                         "country code such as FR, GB or US")
    return text.upper()


def register(commands: Commands) -> None:
    """Add ``contacts`` and its subcommands to the ``tocsin`` parser."""
    contact_commands = group(
        commands, "contacts",
        help="check contact files (customer and staff lists), forget a person",
        description="Work with the contact files audiences read (contacts_from).",
        epilog="example:\n  tocsin contacts check rules/customers.csv --region FR",
        missing=("tocsin contacts: a subcommand is required (check, forget); see 'tocsin "
                 "contacts --help'"),
    )
    check = command(
        contact_commands, "check",
        help="validate contact files row by row (exit 1 over the invalid-row threshold)",
        description=(
            "Read CSV (header line; ',' or ';') or YAML contact files and check every row:\n"
            "phone numbers (E.164, or national in --region), e-mail addresses, IANA time\n"
            "zones, locales, duplicate ids. Prints FILE:LINE: COLUMN: WHY per problem and\n"
            "a summary per file. Exit 1 when a file is unusable or over --max-invalid."
        ),
        epilog=("examples:\n  tocsin contacts check customers.csv --region FR\n"
                "  tocsin contacts check a.csv b.yaml --max-invalid 2% --format json"),
        run=_check,
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="contact file (CSV or YAML)")
    check.add_argument("--region", type=_region, default=None,
                       help="phone region of numbers written without '+' (e.g. FR)")
    check.add_argument("--max-invalid", type=_threshold, default=DEFAULT_MAX_INVALID,
                       metavar="N|N%", help="bad rows allowed per file (default: 1%%)")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="output format (default: text)")
    register_forget(contact_commands)


def _check(args: argparse.Namespace) -> int:
    return check_command(list(args.paths), sys.stdout, region=args.region,
                         max_invalid=args.max_invalid, fmt=args.format)


def _summary(s: LoadedSource) -> str:
    reach = ", ".join(f"{ch} {n}" for ch, n in s.reachable)
    return (f"{s.path}: {s.rows} row(s): {s.valid} valid, {s.invalid} invalid "
            f"({s.unreachable} skipped), {s.duplicates} duplicate(s); reachable: {reach}")


def _doc(s: LoadedSource, over: bool) -> dict[str, Any]:
    return {"path": s.path, "error": s.error, "error_line": s.error_line or None,
            "rows": s.rows, "valid": s.valid, "invalid": s.invalid,
            "skipped": s.unreachable, "duplicates": s.duplicates,
            "reachable": dict(s.reachable), "over_threshold": over,
            "problems": [{"file": p.file, "line": p.line, "column": p.column, "why": p.why,
                          "skipped": p.skipped} for p in s.problems]}


def check_command(paths: list[str], out: TextIO, *, region: str | None = None,
                  max_invalid: Threshold = DEFAULT_MAX_INVALID, fmt: str = "text") -> int:
    """Check each contact file; 0 when all are usable and within ``max_invalid``."""
    failed = False
    docs: list[dict[str, Any]] = []
    for path in paths:
        source = load_source(path, SourceOptions(region=region))
        over = source.error is None and max_invalid.exceeded(source.rows, source.bad_rows)
        failed |= over or source.error is not None
        if fmt == "json":
            docs.append(_doc(source, over))
            continue
        if source.error is not None:
            where = f"{source.path}:{source.error_line}" if source.error_line else source.path
            out.write(f"{where}: error: {source.error}\n")
            continue
        for p in source.problems:
            out.write(f"{p}\n")
        out.write(_summary(source) + "\n")
        if over:
            out.write(f"{source.path}: error: {source.bad_rows} bad row(s) of {source.rows}, "
                      f"over --max-invalid {max_invalid}\n")
    if fmt == "json":
        out.write(json.dumps({"ok": not failed, "max_invalid": str(max_invalid),
                              "sources": docs}, indent=2, ensure_ascii=False) + "\n")
    return EXIT_FAILURE if failed else EXIT_OK
