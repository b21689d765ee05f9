"""A development SMTP sink: accepts every message, prints a summary, keeps it as .eml.

Used by ``make run`` so that a newcomer sees Tocsin's e-mails without any account:
messages land in ``var/mail/*.eml`` (open them with any mail client) and a one-line
summary is printed for each. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    """Writes each accepted message to ``folder`` as ``<timestamp>-<n>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{self.count:04d}.eml"
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        subject = re.sub(r"\s+", " ", str(message.get("Subject", "")))
        rcpts = ", ".join(envelope.rcpt_tos)
        sys.stdout.write(f"[smtp-sink] to {rcpts}: {subject}  ({path})\n")
        sys.stdout.flush()
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, folder: Path) -> None:
    controller = Controller(MaildirHandler(folder), hostname=host, port=port)
    controller.start()
    sys.stdout.write(f"[smtp-sink] listening on {host}:{port}, keeping mail in {folder}/\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    controller.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--folder", type=Path, default=Path("var/mail"))
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
