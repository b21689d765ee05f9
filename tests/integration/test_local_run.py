"""``make run`` (deploy/local/run.py): the demo push subscription reaches the Tocsin the
config describes, for both demo contacts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from deploy.local.push_service import PushService
from deploy.local.run import _register_push, service_endpoint
from router.app import create_app
from router.config import load_config
from router.http import ServiceState
from router.http.state import STORE
from router.rules import load_rules

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "deploy/local/tocsin.yaml"


class _Up:
    """A Tocsin process that is still running."""

    def poll(self) -> int | None:
        return None


def test_the_endpoint_follows_tocsin_listen() -> None:
    """TOCSIN_LISTEN moves the address the demo registers at; a wildcard is reached on
    loopback; the token is the config's webpush.api_token."""
    assert service_endpoint(LOCAL, {}) == ("http://127.0.0.1:9095", "local-development-token")
    assert service_endpoint(LOCAL, {"TOCSIN_LISTEN": "0.0.0.0:9321"})[0] == (
        "http://127.0.0.1:9321")
    assert service_endpoint(LOCAL, {"TOCSIN_LISTEN": "[::1]:9322"})[0] == "http://[::1]:9322"


async def test_demo_subscription_is_registered_for_ops_and_astreinte(tmp_path: Path) -> None:
    """On the port the config names, both demo contacts end up with the demo browser."""
    subscription = tmp_path / "push-subscription.json"
    subscription.write_text(json.dumps(
        PushService(origin="http://127.0.0.1:8089").subscribe()), encoding="utf-8")
    env = {"TOCSIN_STATE_URL": f"sqlite:///{tmp_path / 'tocsin.db'}",
           "TOCSIN_WEBPUSH__ALLOWED_ENDPOINTS": "http://127.0.0.1:8089/"}
    config = load_config(LOCAL, env)
    app = create_app(config, rules=load_rules([REPO / "rules"]), state=ServiceState(),
                     run_workers=False)
    server: TestServer = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        env["TOCSIN_LISTEN"] = f"127.0.0.1:{server.port}"  # not the default 9095
        base_url, token = service_endpoint(LOCAL, env)
        done = await asyncio.to_thread(_register_push, subscription, _Up(), base_url, token,
                                       wait_s=10.0)
        assert done
        rows: list[Any] = await app[STORE].push_subscriptions(None)
        assert sorted(r.contact_id for r in rows) == ["astreinte-fr", "ops"]
    finally:
        await server.close()
