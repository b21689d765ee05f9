"""``make run``: start the development SMTP sink, then Tocsin, and stop both together.

Tocsin runs in the foreground with the local config; the sink prints every e-mail it
receives and keeps it under ``var/mail/``. Ctrl-C (or SIGTERM) stops Tocsin gracefully,
then the sink.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="deploy/local/tocsin.yaml")
    parser.add_argument(
        "--smtp-port", type=int, default=int(os.environ.get("SMTP_SINK_PORT", "1025"))
    )
    parser.add_argument("--no-sink", action="store_true", help="do not start the SMTP sink")
    args = parser.parse_args(argv)

    (ROOT / "var").mkdir(exist_ok=True)
    sink: subprocess.Popen[bytes] | None = None
    if not args.no_sink:
        sink = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/smtp_sink.py"), "--port", str(args.smtp_port),
             "--folder", str(ROOT / "var/mail")],
            cwd=ROOT,
        )
    tocsin = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", args.config], cwd=ROOT
    )

    def forward(signum: int, _frame: object) -> None:
        if tocsin.poll() is None:
            tocsin.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    try:
        status = tocsin.wait()
    finally:
        if sink is not None and sink.poll() is None:
            sink.terminate()
            sink.wait(timeout=10)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
