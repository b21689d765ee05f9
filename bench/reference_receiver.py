"""The P2 reference: a bare aiohttp handler that validates the webhook with pydantic.

No persistence, no routing: the ceiling a Python webhook receiver can reach on this
machine. Tocsin is measured against it in the same run with the same wrk command.
"""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import web
from pydantic import BaseModel


class _Alert(BaseModel):
    status: str | None = None
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class _Webhook(BaseModel):
    version: Any = None
    status: str | None = None
    receiver: str | None = None
    alerts: list[_Alert]


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    payload = _Webhook.model_validate_json(body)
    return web.json_response({"status": "success", "accepted": len(payload.alerts)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/webhook/alertmanager", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
