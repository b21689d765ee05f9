"""``tocsin serve``: run the service with the config file and the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from router.cli.base import EXIT_FAILURE, Commands, command

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add ``serve`` to the ``tocsin`` parser."""
    serve = command(
        commands,
        "serve",
        help="run the service (webhook intake, routing, delivery)",
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
        run=_run,
    )
    serve.add_argument("--config", "-c", metavar="FILE", type=Path,
                       help="service config file (YAML); default: built-in defaults + env")


def _run(args: argparse.Namespace) -> int:
    from router.app import run_service
    from router.config import load_command_config
    from router.errors import ConfigError

    try:
        config = load_command_config(args.config, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"tocsin serve: {exc}\n")
        return EXIT_FAILURE
    try:
        return asyncio.run(run_service(config))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return EXIT_FAILURE
