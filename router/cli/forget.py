"""``tocsin contacts forget ID``: erase a person's personal data from the state store.

The command opens the store of the service config directly (like ``deliveries retry``),
so it works whether the service runs or not, and calls
:meth:`router.store.base.Privacy.forget_contact` once: the history keeps its rows, masked
(:mod:`router.store.erasure`). It then reads the rule set of the service config to say
where the person is still listed: the contact files and inline audiences are the
operator's to edit (a contact still listed would be notified again at the next alert,
and its data written again). Exit status: 0 done (even when the store held nothing about
the person), 1 the config or the store failed, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command
from router.clock import SystemClock
from router.config import ServiceConfig
from router.errors import RuleError, StoreError
from router.masking import mask_phone
from router.store import open_store
from router.store.base import ForgetReport

__all__ = ["Listing", "forget_command", "listed_in", "register_forget"]

_LABELS: dict[str, str] = {
    "deliveries_masked": "deliveries masked (address, subject, text, error)",
    "deliveries_cancelled": "  of which pending, cancelled",
    "fallbacks_masked": "planned fallbacks masked",
    "push_subscriptions_deleted": "push subscriptions deleted",
    "notification_logs_masked": "notification-log rows masked (addresses)",
    "timeline_events_masked": "timeline events masked (name to initials)",
    "acknowledgements_masked": "acknowledgements masked (name to initials)",
    "opt_outs_deleted": "SMS opt-outs deleted",
}


async def _forget(config: ServiceConfig, contact_id: str,
                  phones: Sequence[str]) -> ForgetReport:
    store = open_store(config.state_url, release_leases_on_start=False)
    await store.start()
    try:
        return await store.forget_contact(contact_id, at=SystemClock().now(), phones=phones)
    finally:
        await store.close()


@dataclass(frozen=True, slots=True)
class Listing:
    """Where the rule set still lists a contact (empty when it does not)."""

    audiences: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # the contact files of those audiences
    phones: tuple[str, ...] = ()  # its numbers there: their SMS opt-outs go too
    error: str = ""  # why the rule set could not be read ("" when it could)


def listed_in(config: ServiceConfig, contact_id: str) -> Listing:
    """Where the rule set of ``config`` still lists ``contact_id``."""
    from router.rules import load_rules

    try:
        rules = load_rules(config.rules)
    except RuleError as exc:
        return Listing(error=(str(exc).splitlines() or [type(exc).__name__])[0])
    audiences: list[str] = []
    files: set[str] = set()
    phones: set[str] = set()
    for audience in rules.audiences.values():
        found = [c for c in audience.contacts if c.id == contact_id]
        if found:
            audiences.append(audience.name)
            files.update(s.path for s in audience.sources)
            phones.update(c.phone for c in found if c.phone)
    return Listing(tuple(sorted(audiences)), tuple(sorted(files)), tuple(sorted(phones)))


def forget_command(config: ServiceConfig, contact_id: str, *, fmt: str, out: TextIO,
                   err: TextIO) -> int:
    """Forget ``contact_id`` in the store of ``config``; print what changed."""
    listing = listed_in(config, contact_id)
    audiences, files, phones = listing.audiences, listing.files, listing.phones
    try:
        report = asyncio.run(_forget(config, contact_id, phones))
    except StoreError as exc:
        err.write(f"tocsin contacts forget: {exc}\n")
        return EXIT_FAILURE
    if fmt == "json":
        out.write(json.dumps({"contact_id": contact_id, "changed": report.counts(),
                              "still_listed_in": {"audiences": list(audiences),
                                                  "files": list(files)},
                              "rules_error": listing.error or None}, indent=2) + "\n")
        return EXIT_OK
    if report.total == 0:
        out.write(f"the state store held no personal data of contact {contact_id!r}\n")
    else:
        out.write(f"forgot contact {contact_id!r} in the state store "
                  f"({report.total} rows changed):\n")
        width = max(len(v) for v in _LABELS.values())
        for key, value in report.counts().items():
            out.write(f"  {_LABELS[key]:<{width}}  {value}\n")
    if phones:
        out.write(f"  (opt-outs looked up for {', '.join(mask_phone(p) for p in phones)})\n")
    if audiences:
        out.write(f"contact {contact_id!r} is still listed in audience(s) "
                  f"{', '.join(audiences)}: remove it from "
                  + (", ".join(files) if files else "the rule files")
                  + " too, or it will be notified (and stored) again\n")
    elif listing.error:
        err.write(f"tocsin contacts forget: the rule set could not be read ({listing.error}):"
                  " remove the contact from the contact files and rule files yourself\n")
    if not listing.error:
        out.write("remember: backups of the state database still hold the old rows "
                  "until they expire\n")
    return EXIT_OK


def register_forget(contacts: Commands) -> None:
    """Add ``forget`` under the ``contacts`` command."""
    parser = command(
        contacts, "forget", help="erase a person's personal data from the state store",
        description=(
            "Erase the personal data of contact ID from the state store of the service\n"
            "config: its deliveries keep their place in the history with the address\n"
            "masked and the message erased (pending ones are cancelled), its push\n"
            "subscriptions and SMS opt-outs are deleted, the notification log keeps the\n"
            "contact id without addresses. Remove the contact from the contact files\n"
            "and rule files as well: the command says where it is still listed."),
        epilog=("examples:\n  tocsin contacts forget cust-4711 --config deploy/local/tocsin.yaml\n"
                "  tocsin contacts forget cust-4711 --format json"),
        run=_run_forget)
    parser.add_argument("contact_id", metavar="ID", help="the contact id (as in the files)")
    parser.add_argument("--config", "-c", metavar="FILE", type=Path,
                        help="service config file (default: TOCSIN_CONFIG, then built-ins)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")


def _run_forget(args: argparse.Namespace) -> int:
    from router.config import load_command_config
    from router.errors import ConfigError
    from router.logging import configure_logging

    # The store's own log lines (a schema migrated...) go to stderr, masked, warnings
    # and up: stdout is the report (JSON for scripts).
    configure_logging("warning", "console", stream=sys.stderr)
    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin contacts forget: {exc}\n")
        return EXIT_FAILURE
    return forget_command(config, args.contact_id, fmt=args.format, out=sys.stdout,
                          err=sys.stderr)
