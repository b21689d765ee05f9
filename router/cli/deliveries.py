"""``tocsin deliveries retry ID... | --failed`` (replay dead letters), ``tocsin intake retry
ID... | --dead`` (route dead-lettered intake rows again), ``tocsin push vapid-keys``.

The command opens the state store of the service config directly (``state_url``), with
no HTTP round trip, so it works whether the service runs or not: the replayed rows turn
``pending`` and due now, with a fresh deadline (``dispatch.deadline_s``), and the
running service's dispatcher picks them up at its next poll (or at the next start). It
does not touch rows a running dispatcher holds. Attempts are kept, so the history stays
true. A replayed delivery whose fallback was already sent may notify twice (by design:
the operator asked for it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command, group, usage_error
from router.clock import SystemClock
from router.config import ServiceConfig
from router.store import Store, open_store

__all__ = ["intake_retry_command", "register", "retry_command"]


async def _on_store(config: ServiceConfig,
                    action: Callable[[Store], Awaitable[list[int]]]) -> list[int]:
    """Run ``action`` on the config's state store, opened without releasing leases."""
    store = open_store(config.state_url, release_leases_on_start=False)
    await store.start()
    try:
        return await action(store)
    finally:
        await store.close()


def _report(replayed: Sequence[int], ids: Sequence[int] | None, out: TextIO, err: TextIO, *,
            done: str, nothing: str, refused: str) -> int:
    """Print what was replayed (``done`` + ids, or ``nothing``); 1 when a given id was not."""
    if replayed:
        out.write(f"{done}: {', '.join(str(i) for i in replayed)}\n")
    else:
        out.write(f"{nothing}\n")
    if ids is not None:
        missing = sorted(set(ids) - set(replayed))
        if missing:
            err.write(f"{refused}: {', '.join(str(i) for i in missing)}\n")
            return EXIT_FAILURE
    return EXIT_OK


def retry_command(config: ServiceConfig, ids: Sequence[int] | None, out: TextIO,
                  err: TextIO) -> int:
    """Replay ``ids`` (or every dead letter when None); 0 ok, 1 when an id was not one."""
    replayed = asyncio.run(_on_store(config, lambda store: store.requeue_failed(
        ids, now=SystemClock().now(), deadline_s=config.dispatch.deadline_s)))
    return _report(replayed, ids, out, err,
                   done=f"replayed {len(replayed)} deliver"
                        f"{'y' if len(replayed) == 1 else 'ies'}",
                   nothing="no dead letters to replay",
                   refused="not replayed (no such delivery, or not failed)")


def intake_retry_command(config: ServiceConfig, ids: Sequence[int] | None, out: TextIO,
                         err: TextIO) -> int:
    """Route dead-lettered intake rows again (all when ``ids`` is None); 1 when an id was
    not one."""
    replayed = asyncio.run(_on_store(config, lambda store: store.requeue_intake(ids)))
    return _report(replayed, ids, out, err,
                   done=f"replayed {len(replayed)} intake row"
                        f"{'' if len(replayed) == 1 else 's'}",
                   nothing="no dead-lettered intake rows to replay",
                   refused="not replayed (no such intake row, or not dead-lettered)")


def register(commands: Commands) -> None:
    """Add ``deliveries retry``, ``intake retry`` and ``push vapid-keys`` to the parser."""
    deliveries = group(
        commands, "deliveries", help="act on the outbox (replay dead letters)",
        description="Act on the delivery outbox of the configured state store.",
        missing="tocsin deliveries: a subcommand is required (retry)")
    retry = command(
        deliveries, "retry", help="replay failed deliveries (dead letters)",
        description=(
            "Turn failed deliveries (dead letters) back to pending, due now, with a fresh\n"
            "deadline. Works on the state store of the config directly: a running service\n"
            "picks them up at its next poll. Exit 1 when a given ID was not a dead letter."),
        epilog=("examples:\n  tocsin deliveries retry 42 43 --config deploy/local/tocsin.yaml\n"
                "  tocsin deliveries retry --failed"),
        run=_run_deliveries)
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="delivery ids")
    retry.add_argument("--failed", action="store_true", help="replay every dead letter")
    retry.add_argument("--config", "-c", metavar="FILE", type=Path,
                       help="service config file (default: TOCSIN_CONFIG, then built-ins)")
    intake = group(
        commands, "intake", help="act on the intake log (replay dead-lettered rows)",
        description="Act on the intake log of the configured state store.",
        missing="tocsin intake: a subcommand is required (retry)")
    intake_retry = command(
        intake, "retry", help="route dead-lettered intake rows again",
        description=(
            "Turn intake rows set aside because routing them raised (GET\n"
            "/api/v1/intake?status=dead) back to unrouted: a running service routes them at\n"
            "its next poll. Exit 1 when a given ID was not dead-lettered."),
        epilog=("examples:\n  tocsin intake retry 7 --config deploy/local/tocsin.yaml\n"
                "  tocsin intake retry --dead"),
        run=_run_intake)
    intake_retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="intake ids")
    intake_retry.add_argument("--dead", action="store_true",
                              help="replay every dead-lettered row")
    intake_retry.add_argument("--config", "-c", metavar="FILE", type=Path,
                              help="service config file (default: TOCSIN_CONFIG, then built-ins)")
    push = group(
        commands, "push", help="Web Push helpers", description="Web Push helpers.",
        missing="tocsin push: a subcommand is required (vapid-keys)")
    command(
        push, "vapid-keys", help="print a new VAPID key pair",
        description=("Print a new VAPID key pair: the private key for webpush.vapid_private_key\n"
                     "and the public key for the web page's applicationServerKey."),
        epilog="example:\n  tocsin push vapid-keys",
        run=_run_vapid_keys)


def _run_vapid_keys(_args: argparse.Namespace) -> int:
    from router.push_keys import vapid_keys_command

    return vapid_keys_command(sys.stdout)


def _run_deliveries(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.failed):
        return usage_error("tocsin deliveries retry: give delivery IDs or --failed (not both)")
    from router.config import load_command_config
    from router.errors import ConfigError

    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin deliveries retry: {exc}\n")
        return EXIT_FAILURE
    return retry_command(config, None if args.failed else list(args.ids), sys.stdout,
                         sys.stderr)


def _run_intake(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.dead):
        return usage_error("tocsin intake retry: give intake IDs or --dead (not both)")
    from router.config import load_command_config
    from router.errors import ConfigError

    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin intake retry: {exc}\n")
        return EXIT_FAILURE
    return intake_retry_command(config, None if args.dead else list(args.ids), sys.stdout,
                                sys.stderr)
