"""A local Web Push service for development and tests: it plays the push service AND the
browser, so a push sent by Tocsin can be checked end to end.

- ``POST /subscriptions`` ``{"label": "..."}`` creates a browser-like subscription: a
  fresh P-256 key pair and auth secret, kept here; answers the ``PushSubscription`` JSON
  (``endpoint``, ``keys.p256dh``, ``keys.auth``) to register with Tocsin.
- ``POST /push/{token}`` is the push endpoint (RFC 8030). It verifies the VAPID
  ``Authorization: vapid t=<JWT>,k=<key>`` header (RFC 8292: ES256 signature with ``k``,
  ``aud`` = this service's origin, ``exp`` in the future and at most 24 h ahead, ``sub``
  a mailto: or https: URL), requires ``TTL`` and ``Content-Encoding: aes128gcm``,
  decrypts the body (RFC 8291) with the subscription's private key and keeps the
  plaintext. Answers 201 with a ``Location``.
- ``POST /subscriptions/{token}/behaviour`` ``{"status": 410}`` or ``{"status": 429,
  "retry_after": 2, "times": 1}`` scripts the next answers (gone, rate limited).
- ``GET /messages`` lists what was received (JSON); ``GET /`` shows it as a page.

Run: ``python deploy/local/push_service.py --port 8089`` (``make run`` starts it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["PushService", "Received", "create_app", "main"]

_MAX_BODY = 4096


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Received:
    """One push as delivered to the "browser" (decrypted)."""

    token: str
    label: str
    payload: str
    ttl: str
    urgency: str | None
    vapid_sub: str
    received_at: float


@dataclass
class _Subscription:
    token: str
    label: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    script: list[tuple[int, int | None]] = field(default_factory=list)  # (status, retry)


class VapidError(Exception):
    """The VAPID header is missing or wrong (answered 401/403)."""


@dataclass
class PushService:
    """State of the push service: subscriptions, scripted answers, received messages."""

    origin: str = ""
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    requests: list[tuple[str, int, float]] = field(default_factory=list)  # token, status, t

    def subscribe(self, label: str = "") -> dict[str, Any]:
        """A new browser-like subscription; the PushSubscription JSON for it."""
        token = secrets.token_urlsafe(16)
        key = ec.generate_private_key(ec.SECP256R1())
        sub = _Subscription(token=token, label=label, private_key=key,
                            auth=secrets.token_bytes(16))
        self.subscriptions[token] = sub
        public = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.origin}/push/{token}",
                "keys": {"p256dh": _b64e(public), "auth": _b64e(sub.auth)}}

    def verify_vapid(self, header: str | None) -> str:
        """Check the VAPID header (RFC 8292); return the ``sub`` claim."""
        if not header or not header.lower().startswith("vapid "):
            raise VapidError("missing 'Authorization: vapid t=...,k=...'")
        params = dict(part.strip().split("=", 1) for part in header[6:].split(",")
                      if "=" in part)
        token, key = params.get("t"), params.get("k")
        if not token or not key:
            raise VapidError("vapid header needs t= and k=")
        try:
            head_b64, claims_b64, sig_b64 = token.split(".")
            header_json = json.loads(_b64d(head_b64))
            claims = json.loads(_b64d(claims_b64))
            signature = _b64d(sig_b64)
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64d(key))
        except (ValueError, binascii.Error) as exc:
            raise VapidError(f"malformed VAPID token: {exc}") from None
        if header_json.get("alg") != "ES256" or len(signature) != 64:
            raise VapidError("VAPID JWT must be ES256")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        try:
            public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VapidError("VAPID signature does not verify with k") from None
        if claims.get("aud") != self.origin:
            raise VapidError(f"aud {claims.get('aud')!r} is not {self.origin!r}")
        exp = claims.get("exp")
        now = time.time()
        if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
            raise VapidError("exp must be in the future and at most 24 h ahead")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise VapidError("sub must be a mailto: or https: URL")
        return sub


def create_app(service: PushService | None = None) -> web.Application:
    """The aiohttp app of the push service (``service`` holds its state)."""
    state = service if service is not None else PushService()
    app = web.Application(client_max_size=64 * 1024)
    app[_STATE] = state
    app.router.add_post("/subscriptions", _subscribe)
    app.router.add_post("/subscriptions/{token}/behaviour", _behaviour)
    app.router.add_post("/push/{token}", _push)
    app.router.add_get("/messages", _messages)
    app.router.add_get("/", _page)
    return app


_STATE: web.AppKey[PushService] = web.AppKey("push_service")


async def _subscribe(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    body = await request.json() if request.can_read_body else {}
    return web.json_response(state.subscribe(str(body.get("label", ""))), status=201)


async def _behaviour(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    sub = state.subscriptions.get(request.match_info["token"])
    if sub is None:
        return web.json_response({"error": "no such subscription"}, status=404)
    body = await request.json()
    status, retry = int(body["status"]), body.get("retry_after")
    sub.script.extend([(status, None if retry is None else int(retry))]
                      * int(body.get("times", 1)))
    return web.json_response({"scripted": len(sub.script)})


async def _push(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    token = request.match_info["token"]
    sub = state.subscriptions.get(token)

    def answer(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
        state.requests.append((token, status, time.monotonic()))
        return web.Response(status=status, text=text, headers=headers)

    if sub is None:
        return answer(404, "no such subscription")
    if sub.script:
        status, retry = sub.script.pop(0)
        if status == 410:
            del state.subscriptions[token]
        return answer(status, "scripted", {"Retry-After": str(retry)} if retry else None)
    try:
        vapid_sub = state.verify_vapid(request.headers.get("Authorization"))
    except VapidError as exc:
        return answer(403, str(exc))
    ttl = request.headers.get("TTL")
    if ttl is None or not ttl.isdigit():
        return answer(400, "TTL header required")
    if request.headers.get("Content-Encoding") != "aes128gcm":
        return answer(415, "Content-Encoding must be aes128gcm")
    body = await request.read()
    if len(body) > _MAX_BODY:
        return answer(413, f"payload {len(body)} bytes > {_MAX_BODY}")
    try:
        plaintext = http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth,
                                     version="aes128gcm")
    except Exception as exc:  # noqa: BLE001 - any decryption failure is the sender's fault
        return answer(400, f"cannot decrypt: {exc!r}")
    state.received.append(Received(token=token, label=sub.label,
                                   payload=plaintext.decode("utf-8"), ttl=ttl,
                                   urgency=request.headers.get("Urgency"),
                                   vapid_sub=vapid_sub, received_at=time.time()))
    return answer(201, "", {"Location": f"{state.origin}/messages/{len(state.received)}"})


async def _messages(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    return web.json_response([
        {"label": r.label, "token": r.token, "payload": json.loads(r.payload), "ttl": r.ttl,
         "urgency": r.urgency, "vapid_sub": r.vapid_sub,
         "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.received_at))}
        for r in state.received
    ])


async def _page(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    rows = "".join(
        f"<tr><td>{html.escape(time.strftime('%H:%M:%S', time.localtime(r.received_at)))}"
        f"</td><td>{html.escape(r.label)}</td><td>{html.escape(str(r.urgency))}</td>"
        f"<td><pre>{html.escape(r.payload)}</pre></td></tr>"
        for r in reversed(state.received))
    page = ("<html><head><meta charset='utf-8'><title>Tocsin push inbox</title></head><body>"
            f"<h1>Push messages received ({len(state.received)})</h1>"
            "<table border=1><tr><th>time</th><th>subscription</th><th>urgency</th>"
            f"<th>payload</th></tr>{rows}</table></body></html>")
    return web.Response(text=page, content_type="text/html")


def main(argv: list[str] | None = None) -> int:
    """Run the push service until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--subscriptions-file", default=None,
                        help="create one subscription at start and write its JSON here")
    args = parser.parse_args(argv)
    service = PushService(origin=f"http://{args.host}:{args.port}")
    if args.subscriptions_file:
        with open(args.subscriptions_file, "w", encoding="utf-8") as out:
            json.dump(service.subscribe("demo browser"), out)
    web.run_app(create_app(service), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
