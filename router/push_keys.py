"""``tocsin push vapid-keys``: a new VAPID key pair (RFC 8292) for the push channel.

The private key is printed as base64url of the raw 32-byte P-256 scalar (what
``webpush.vapid_private_key`` takes); the public key as base64url of the 65-byte
uncompressed point (what the web page passes to ``pushManager.subscribe`` as
``applicationServerKey``).
"""

from __future__ import annotations

import base64
from typing import TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["generate_vapid_keys", "vapid_keys_command"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def generate_vapid_keys() -> tuple[str, str]:
    """``(private, public)`` base64url strings of a fresh P-256 key pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
    return _b64url(private), _b64url(public)


def vapid_keys_command(out: TextIO) -> int:
    """Print a new key pair as config lines; exit status 0."""
    private, public = generate_vapid_keys()
    out.write("# Put the private key in the service config (keep it secret):\n")
    out.write(f"webpush:\n  vapid_private_key: {private}\n")
    out.write("# Give the public key to the web page (applicationServerKey):\n")
    out.write(f"# public key: {public}\n")
    return 0
