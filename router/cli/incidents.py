"""``tocsin incidents ack ID --by NAME``: acknowledge an incident on the running service.

Unlike ``deliveries retry`` (which opens the state store), acknowledging is the
service's decision (it stops re-sends and escalation and tells the others), so the
command calls ``POST /api/v1/incidents/{id}/ack`` on the running service: ``--url``
(default: the config's ``listen`` address, ``0.0.0.0`` / ``::`` read as the loopback),
with ``--token`` or ``TOCSIN_API_TOKEN`` (an API token with scope ``operate``).

Exit status: 0 acknowledged, or already acknowledged (the output says by whom); 1 the
incident is resolved, asks for no answer, is unknown, or the call failed; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final, TextIO

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command, group, usage_error
from router.config import ServiceConfig

__all__ = ["TOKEN_ENV", "ack_command", "register", "service_url"]

#: The environment variable the API token is read from when ``--token`` is absent.
TOKEN_ENV: Final = "TOCSIN_API_TOKEN"
_OK_RESULTS: Final = ("acknowledged", "already")


def service_url(config: ServiceConfig) -> str:
    """``http://HOST:PORT`` of the config's ``listen`` (a wildcard host: the loopback)."""
    host, port = config.listen_address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _call(url: str, body: dict[str, Any], token: str | None,
          timeout_s: float) -> tuple[int, dict[str, Any]]:
    """POST ``body`` as JSON; (status, JSON answer). Raises OSError when unreachable."""
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "User-Agent": "tocsin-cli"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}


def ack_command(base_url: str, incident_id: str, *, by: str, comment: str | None,
                token: str | None, timeout_s: float, out: TextIO, err: TextIO) -> int:
    """Acknowledge ``incident_id`` on the service at ``base_url``; the exit status."""
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        return usage_error(f"tocsin incidents ack: --url must be http:// or https://, "
                           f"got {base_url!r}")
    url = (f"{base_url.rstrip('/')}/api/v1/incidents/"
           f"{urllib.parse.quote(incident_id, safe='')}/ack")
    body: dict[str, Any] = {"by": by, "channel": "cli"}
    if comment is not None:
        body["comment"] = comment
    try:
        status, answer = _call(url, body, token, timeout_s)
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        err.write(f"tocsin incidents ack: cannot reach Tocsin at {base_url}: {reason}\n")
        return EXIT_FAILURE
    result = answer.get("result")
    message = answer.get("message") or answer.get("error") or f"HTTP {status}"
    if status in (401, 403):
        hint = "" if token else f" (give --token or set {TOKEN_ENV})"
        err.write(f"tocsin incidents ack: refused: {message}{hint}\n")
        return EXIT_FAILURE
    if status == 200 and result in _OK_RESULTS:
        if result == "acknowledged":
            who = answer.get("acknowledged_by") or {}
            out.write(f"{message} by {who.get('name') or by}\n")
        else:
            out.write(f"{message}\n")
        return EXIT_OK
    err.write(f"tocsin incidents ack: {message}\n")
    return EXIT_FAILURE


def register(commands: Commands) -> None:
    """Add ``incidents ack`` to the parser."""
    incidents = group(
        commands, "incidents", help="act on incidents of the running service",
        description="Act on incidents through the HTTP API of the running service.",
        missing="tocsin incidents: a subcommand is required (ack)")
    ack = command(
        incidents, "ack", help="acknowledge an incident",
        description=(
            "Acknowledge an incident on the running service (POST\n"
            "/api/v1/incidents/ID/ack): re-sends and escalation stop and, when the route\n"
            "asks for it, the others paged are told who took it. Needs an API token with\n"
            f"scope operate (--token or {TOKEN_ENV}) when the API has tokens.\n"
            "Exit 0 when acknowledged (or already), 1 otherwise."),
        epilog=("examples:\n"
                "  tocsin incidents ack 3f2a9c61 --by 'Alice Martin'\n"
                "  TOCSIN_API_TOKEN=... tocsin incidents ack 3f2a9c61 --by alice "
                "--url https://tocsin.example.com"),
        run=_run_ack)
    ack.add_argument("incident_id", metavar="ID", help="incident id (GET /api/v1/incidents)")
    ack.add_argument("--by", required=True, metavar="NAME",
                     help="who takes it (the name the others are told)")
    ack.add_argument("--comment", metavar="TEXT", help="a short note (at most 500 characters)")
    ack.add_argument("--url", metavar="URL",
                     help="the service's base URL (default: http:// + the config's listen)")
    ack.add_argument("--token", metavar="TOKEN",
                     help=f"API token with scope operate (default: ${TOKEN_ENV})")
    ack.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                     help="HTTP timeout (default: 10)")
    ack.add_argument("--config", "-c", metavar="FILE", type=Path,
                     help="service config file, for --url's default "
                          "(default: TOCSIN_CONFIG, then built-ins)")


def _run_ack(args: argparse.Namespace) -> int:
    if not args.by.strip():
        return usage_error("tocsin incidents ack: --by must not be empty")
    if args.timeout <= 0:
        return usage_error("tocsin incidents ack: --timeout must be > 0")
    base_url = args.url
    if base_url is None:
        from router.config import load_command_config
        from router.errors import ConfigError

        try:
            config = load_command_config(args.config, os.environ)
        except ConfigError as exc:
            sys.stderr.write(f"tocsin incidents ack: {exc}\n")
            return EXIT_FAILURE
        base_url = service_url(config)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    return ack_command(base_url, args.incident_id, by=args.by.strip(), comment=args.comment,
                       token=token, timeout_s=args.timeout, out=sys.stdout, err=sys.stderr)
