"""PostgreSQL lost while serving: the webhook answers 503 with Retry-After (never 200
without durability), /readyz fails, and both recover once the server is back."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.services.postgres import postgres_server

from .conftest import ClientFactory, store_of

_BODY = b'{"alerts": [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]}'
_JSON = {"Content-Type": "application/json"}


async def _ready(client: Any) -> bool:
    return bool((await client.get("/readyz")).status == 200)


async def test_webhook_is_503_while_postgresql_is_down_then_durable_again(
        make_client: ClientFactory) -> None:
    """Down: 503 + Retry-After and /readyz 503, nothing half-written; back: 200, committed."""
    server = postgres_server()
    dbname = server.create_database()
    client = await make_client(state_url=server.url(dbname) + "?pool_timeout_s=1")
    assert (await client.post("/webhook/alertmanager", data=_BODY, headers=_JSON)).status == 200
    await asyncio.to_thread(server.stop)
    try:
        refused = await client.post("/webhook/alertmanager", data=_BODY, headers=_JSON)
        assert refused.status == 503
        assert int(refused.headers["Retry-After"]) > 0
        assert not await _ready(client)
    finally:
        await asyncio.to_thread(server.start)
    deadline = asyncio.get_running_loop().time() + 30
    while not await _ready(client):  # the pool reconnects on its own
        assert asyncio.get_running_loop().time() < deadline, "/readyz never recovered"
        await asyncio.sleep(0.2)
    assert (await client.post("/webhook/alertmanager", data=_BODY, headers=_JSON)).status == 200
    assert (await store_of(client).counts())["intake_pending"] == 4  # 2 accepted twice, 0 lost
