"""``tocsin dev``: tools for the local world of ``make run`` (no AWS account needed).

- ``tocsin dev sns-identity`` writes a fresh RSA key and its self-signed certificate
  (``var/sns-local/`` by default): the local stand-in for SNS's signing certificate;
  ``make run`` serves the certificate on http://127.0.0.1:8091/ and its config trusts it.
- ``tocsin dev reply PHONE TEXT`` posts to the running Tocsin an SNS ``Notification``
  carrying the SMS reply TEXT from PHONE, signed with that key exactly as SNS signs
  (``router.acks.sns_dev``), as AWS End User Messaging two-way SMS would publish it.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from router.cli.base import EXIT_FAILURE, EXIT_OK, Commands, command, group

__all__ = ["DEFAULT_CERT_URL", "DEFAULT_DIR", "DEFAULT_TOPIC_ARN", "register"]

#: Where ``make run`` keeps the local signing key and certificate.
DEFAULT_DIR: Final = Path("var/sns-local")
#: Where ``make run`` serves the local certificate.
DEFAULT_CERT_URL: Final = "http://127.0.0.1:8091/SimpleNotificationService-local.pem"
#: The topic of the local config's ``sns.inbound.topic_arns``.
DEFAULT_TOPIC_ARN: Final = "arn:aws:sns:us-east-1:000000000000:tocsin-sms-replies"
KEY_FILE: Final = "signing-key.pem"
CERT_FILE: Final = "signing-cert.pem"


def register(commands: Commands) -> None:
    """Add ``dev sns-identity`` and ``dev reply`` to the ``tocsin`` parser."""
    dev = group(commands, "dev", help="local world tools (play an SMS reply)",
                description="Tools for the local world of `make run`.",
                missing="tocsin dev: a subcommand is required (reply, sns-identity)")
    identity = command(
        dev, "sns-identity", help="write a local SNS signing key and certificate",
        description=("Write a fresh RSA key and a self-signed certificate, the local\n"
                     "stand-in for SNS's signing certificate (never use it in production)."),
        epilog="example:\n  tocsin dev sns-identity --dir var/sns-local", run=_identity)
    identity.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                          help=f"where to write {KEY_FILE} and {CERT_FILE} "
                               f"(default: {DEFAULT_DIR})")
    identity.add_argument("--force", action="store_true", help="replace an existing key")
    reply = command(
        dev, "reply", help="post a signed SNS notification of an SMS reply to Tocsin",
        description=(
            "Post to a running Tocsin (POST /webhook/sns) what SNS would post for the SMS\n"
            "reply TEXT from PHONE: a Notification signed with the local key\n"
            "(tocsin dev sns-identity), whose certificate Tocsin fetches from --cert-url.\n"
            "Exit status 0 when Tocsin answered 200."),
        epilog=("examples:\n"
                "  tocsin dev reply +33612345678 \"oui\"\n"
                "  tocsin dev reply +33612345678 \"OUI 4821\" --url http://127.0.0.1:9095"),
        run=_reply)
    reply.add_argument("phone", metavar="PHONE", help="who replies (E.164, e.g. +33612345678)")
    reply.add_argument("text", metavar="TEXT", help="the SMS text (e.g. \"oui\", \"OUI 4821\")")
    reply.add_argument("--url", default="http://127.0.0.1:9095",
                       help="the running Tocsin (default: http://127.0.0.1:9095)")
    reply.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                       help=f"where the signing key is (default: {DEFAULT_DIR})")
    reply.add_argument("--cert-url", default=DEFAULT_CERT_URL,
                       help=f"SigningCertURL (default: {DEFAULT_CERT_URL})")
    reply.add_argument("--topic-arn", default=DEFAULT_TOPIC_ARN,
                       help=f"TopicArn (default: {DEFAULT_TOPIC_ARN})")
    reply.add_argument("--destination", default="+18005550100",
                       help="the number replied to (default: +18005550100)")
    reply.add_argument("--signature-version", choices=["1", "2"], default="2",
                       help="1 = SHA1withRSA, 2 = SHA256withRSA (default: 2)")
    reply.add_argument("--timeout", type=float, default=10.0, help="seconds (default: 10)")


def _identity(args: argparse.Namespace) -> int:
    from router.acks.sns_dev import new_signing_identity
    from router.clock import SystemClock

    folder: Path = args.dir
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if key_path.exists() and cert_path.exists() and not args.force:
        sys.stdout.write(f"kept the existing signing key in {folder}\n")
        return EXIT_OK
    made = new_signing_identity(SystemClock().now())
    folder.mkdir(parents=True, exist_ok=True)
    key_path.touch(mode=0o600)
    key_path.write_bytes(made.key_pem)
    cert_path.write_bytes(made.cert_pem)
    sys.stdout.write(f"wrote {key_path} and {cert_path}\n")
    return EXIT_OK


def _reply(args: argparse.Namespace) -> int:
    from router.acks.sns_dev import inbound_sms_message, signed_message
    from router.clock import SystemClock

    key_path: Path = args.dir / KEY_FILE
    try:
        key_pem = key_path.read_bytes()
    except OSError as exc:
        sys.stderr.write(f"cannot read the signing key {key_path}: {exc.strerror or exc} "
                         "(run `tocsin dev sns-identity`, or `make run` which does)\n")
        return EXIT_FAILURE
    message = signed_message(
        key_pem, message_type="Notification", topic_arn=args.topic_arn,
        message=inbound_sms_message(args.phone, args.text, destination=args.destination),
        cert_url=args.cert_url, at=SystemClock().now(),
        signature_version=args.signature_version)
    request = urllib.request.Request(
        args.url.rstrip("/") + "/webhook/sns", data=json.dumps(message).encode("utf-8"),
        method="POST", headers={"Content-Type": "text/plain; charset=UTF-8",
                                "x-amz-sns-message-type": "Notification"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, TimeoutError) as exc:
        sys.stderr.write(f"cannot reach Tocsin at {args.url}: {exc}\n")
        return EXIT_FAILURE
    sys.stdout.write(f"{status} {text.strip()}\n")
    return EXIT_OK if status == 200 else EXIT_FAILURE
