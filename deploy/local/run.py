"""``make run``: start the development SMTP sink, the SNS emulator (moto server), the
local Web Push service, then Tocsin, and stop them together.

Tocsin runs in the foreground with the local config; the sink prints every e-mail it
receives and keeps it under ``var/mail/``; SMS "sent" through SNS are listed at
http://127.0.0.1:5055/moto-api/data.json (``sns.SMS``); push messages at
http://127.0.0.1:8089/ (the push service registers one demo browser subscription for the
contacts ``ops`` and ``astreinte-fr`` once Tocsin is up). SMS replies: a local SNS
signing key and certificate are made under ``var/sns-local/`` (``tocsin dev
sns-identity``, kept across runs, never committed) and the certificate is served on
http://127.0.0.1:8091/, which the local config trusts (``sns.inbound``), so that
``tocsin dev reply +33612345678 "oui"`` plays an SMS reply. Ctrl-C (or SIGTERM) stops
Tocsin gracefully, then the helpers.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="deploy/local/tocsin.yaml")
    parser.add_argument(
        "--smtp-port", type=int, default=int(os.environ.get("SMTP_SINK_PORT", "1025"))
    )
    parser.add_argument("--no-sink", action="store_true", help="do not start the SMTP sink")
    parser.add_argument("--sns-port", type=int, default=5055, help="moto server port")
    parser.add_argument("--push-port", type=int, default=8089, help="push service port")
    parser.add_argument("--sns-cert-port", type=int, default=8091,
                        help="port of the local SNS signing certificate (sns.inbound)")
    args = parser.parse_args(argv)

    (ROOT / "var").mkdir(exist_ok=True)
    sink: subprocess.Popen[bytes] | None = None
    if not args.no_sink:
        sink = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/smtp_sink.py"), "--port", str(args.smtp_port),
             "--folder", str(ROOT / "var/mail")],
            cwd=ROOT,
        )
    helpers = [] if sink is None else [sink]
    helpers.append(subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
         str(args.sns_port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    subscription = ROOT / "var/push-subscription.json"
    subscription.unlink(missing_ok=True)  # written afresh by the push service
    helpers.append(subprocess.Popen(
        [sys.executable, str(ROOT / "deploy/local/push_service.py"), "--port",
         str(args.push_port), "--subscriptions-file", str(subscription)], cwd=ROOT))
    cert_server = _serve_sns_certificate(args.sns_cert_port)
    # The push service is on http://127.0.0.1: exempt from the https + public-host rule.
    env = {**os.environ,
           "TOCSIN_WEBPUSH__ALLOWED_ENDPOINTS": f"http://127.0.0.1:{args.push_port}/"}
    tocsin = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", args.config], cwd=ROOT, env=env
    )
    # Where that Tocsin listens and its push token: the config file with the environment
    # overrides, read as `tocsin serve` reads them (TOCSIN_LISTEN moves the port).
    base_url, token = service_endpoint(ROOT / args.config, env)

    def forward(signum: int, _frame: object) -> None:
        if tocsin.poll() is None:
            tocsin.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    _register_push(subscription, tocsin, base_url, token)
    try:
        status = tocsin.wait()
    finally:
        if cert_server is not None:
            cert_server.shutdown()
        for helper in helpers:
            if helper.poll() is None:
                helper.terminate()
                helper.wait(timeout=10)
    return status


def _serve_sns_certificate(port: int) -> http.server.ThreadingHTTPServer | None:
    """Make the local SNS signing key (once) and serve its certificate, only it, on
    http://127.0.0.1:PORT/ (the SigningCertURL of `tocsin dev reply`)."""
    folder = ROOT / "var/sns-local"
    made = subprocess.run([sys.executable, "-m", "router", "dev", "sns-identity", "--dir",
                           str(folder)], cwd=ROOT, check=False)
    if made.returncode != 0:
        print("local SNS signing key not made: `tocsin dev reply` will not work",
              file=sys.stderr)
        return None
    pem = (folder / "signing-cert.pem").read_bytes()

    class Certificate(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/SimpleNotificationService-local.pem":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pem-file")
            self.send_header("Content-Length", str(len(pem)))
            self.end_headers()
            self.wfile.write(pem)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: Tocsin logs what it fetched

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Certificate)
    except OSError as exc:
        print(f"local SNS certificate not served on port {port}: {exc}", file=sys.stderr)
        return None
    threading.Thread(target=server.serve_forever, name="sns-cert", daemon=True).start()
    return server


def service_endpoint(config_path: Path, environ: dict[str, str]) -> tuple[str, str | None]:
    """The base URL a local client reaches the configured Tocsin at (a wildcard listen
    address is reached on loopback) and its ``webpush.api_token`` (None without push)."""
    from router.config import load_config

    config = load_config(config_path, environ)
    host, port = config.listen_address
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    token = (config.webpush.api_token.get_secret_value() if config.webpush is not None
             else None)
    return f"http://{shown}:{port}", token


class _Running(Protocol):
    def poll(self) -> int | None: ...


def _register_push(subscription: Path, tocsin: _Running, base_url: str,
                   token: str | None, *, contacts: tuple[str, ...] = ("ops", "astreinte-fr"),
                   wait_s: float = 30.0) -> bool:
    """Register the push service's demo subscription with the Tocsin at ``base_url``,
    for each of ``contacts``, once both are up; False when it could not."""
    if token is None:
        print("push demo subscription not registered (no webpush section)", file=sys.stderr)
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and tocsin.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2):
                pass
            info = json.loads(subscription.read_text(encoding="utf-8"))
            break
        except (OSError, ValueError):
            time.sleep(0.3)
    else:
        print("push demo subscription not registered (Tocsin or push service not up)",
              file=sys.stderr)
        return False
    for contact in contacts:
        body = json.dumps({"contact_id": contact, "subscription": info}).encode()
        request = urllib.request.Request(
            f"{base_url}/api/v1/push/subscriptions", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5):
            pass
    return True


if __name__ == "__main__":
    raise SystemExit(main())
