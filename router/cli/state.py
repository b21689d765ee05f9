"""``tocsin state backup DEST``: a consistent copy of the state database, service running.

SQLite's online backup copies the database as of one read transaction: every alert the
service acknowledged before the copy started is in it, whatever the service writes
meanwhile (WAL mode: the copy never blocks the writer). The copy is written next to
``DEST`` under a temporary name, checked (``PRAGMA quick_check``), switched out of WAL
mode (one self-contained file), fsync'ed, then renamed to ``DEST``: a crash mid-way never
leaves a truncated file under the final name. Restore: stop the service, put the copy at
the ``state_url`` path (and delete stale ``-wal``/``-shm`` files next to it), start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command, group
from router.config import ServiceConfig
from router.errors import ConfigError, StoreError
from router.store import sqlite_url
from router.store.sqlite.tools import backup_database

__all__ = ["backup_command", "register"]

#: How long the backup waits for a lock held by the service before giving up.
BUSY_TIMEOUT_S = 30.0


def backup_command(config: ServiceConfig, dest: Path, *, force: bool, out: TextIO,
                   err: TextIO) -> int:
    """Copy the state database of ``config`` to ``dest``; 0 ok, 1 on any failure."""
    try:
        path, _ = sqlite_url(config.state_url)
    except ConfigError as exc:
        err.write(f"tocsin state backup: {exc}\n")
        return EXIT_FAILURE
    source = Path(path)
    if path == ":memory:" or not source.is_file():
        err.write(f"tocsin state backup: no state database at {source}\n")
        return EXIT_FAILURE
    if dest.exists() and not force:
        err.write(f"tocsin state backup: {dest} exists (give --force to replace it)\n")
        return EXIT_FAILURE
    if dest.resolve() == source.resolve():
        err.write("tocsin state backup: DEST is the live database itself\n")
        return EXIT_FAILURE
    started = time.monotonic()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        version = backup_database(source, tmp, busy_timeout_s=BUSY_TIMEOUT_S)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except (StoreError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        err.write(f"tocsin state backup: {exc}\n")
        return EXIT_FAILURE
    size_mib = dest.stat().st_size / 1_048_576
    out.write(f"backed up {source} (schema version {version}, {size_mib:.1f} MiB) to {dest} "
              f"in {time.monotonic() - started:.1f} s\n")
    return EXIT_OK


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def register(commands: Commands) -> None:
    """Add ``state backup`` to the ``tocsin`` parser."""
    state = group(
        commands, "state", help="the state database (backup)",
        description="Work on the state database of the service config.",
        missing="tocsin state: a subcommand is required (backup)")
    backup = command(
        state, "backup", help="copy the state database, consistently, while the service runs",
        description=(
            "Write a consistent copy of the SQLite state database (state_url) to DEST,\n"
            "while the service runs: every alert acknowledged before the copy started is\n"
            "in it. The copy is checked, self-contained (no -wal file) and appears under\n"
            "DEST only once complete. Restore: stop the service, put the copy at the\n"
            "state_url path (remove stale -wal/-shm files there), start the service."),
        epilog=("examples:\n"
                "  tocsin state backup /backups/tocsin-$(date +%F).db --config tocsin.yaml\n"
                "  tocsin state backup var/copy.db --force"),
        run=_run)
    backup.add_argument("dest", metavar="DEST", type=Path, help="file to write")
    backup.add_argument("--force", action="store_true", help="replace DEST if it exists")
    backup.add_argument("--config", "-c", metavar="FILE", type=Path,
                        help="service config file (default: TOCSIN_CONFIG, then built-ins)")


def _run(args: argparse.Namespace) -> int:
    from router.config import load_command_config

    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin state backup: {exc}\n")
        return EXIT_FAILURE
    return backup_command(config, args.dest, force=args.force, out=sys.stdout,
                          err=sys.stderr)
