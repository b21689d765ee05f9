"""The real `tocsin serve` process wires every configured channel (push needs the store)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router.push_keys import generate_vapid_keys
from tests.services.http import request, wait_until
from tests.services.ports import free_port
from tests.services.smtp import SmtpServer
from tests.services.tocsin import REPO, TocsinProcess

pytestmark = pytest.mark.integration

API_TOKEN = "push-api-token-for-tests"


@pytest.fixture
def push_service(tmp_path: Path) -> Iterator[str]:
    """The local Web Push service (VAPID verified, payload decrypted), as a process."""
    port = free_port()
    log = (tmp_path / "push.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "deploy/local/push_service.py"), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: request("GET", f"{url}/messages")[0] == 200, what="push service")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_served_process_sends_web_push_to_a_registered_subscription(
    push_service: str,
    smtp_server: SmtpServer,
    tocsin_factory: Callable[..., TocsinProcess],
) -> None:
    """`tocsin serve` with a webpush section delivers push, decrypted by the push service."""
    private_key, _public = generate_vapid_keys()
    tocsin = tocsin_factory(
        smtp_port=smtp_server.port,
        extra={"webpush": {"vapid_private_key": private_key,
                           "vapid_subject": "mailto:ops@example.com",
                           "api_token": API_TOKEN,
                           "allowed_endpoints": [push_service]}},  # the local push service
    ).start()
    status, subscription = request("POST", f"{push_service}/subscriptions", {"label": "phone"})
    assert status == 201, subscription
    status, answer = request(
        "POST", f"{tocsin.url}/api/v1/push/subscriptions",
        {"contact_id": "astreinte-fr", "subscription": subscription},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    assert status in (200, 201), answer

    status, _ = tocsin.post_webhook({"alerts": [{
        "labels": {"alertname": "PostgresDown", "service": "billing", "severity": "critical",
                   "instance": "db-1"},
        "annotations": {"summary": "La base de facturation ne répond plus"},
    }]})
    assert status == 200

    def pushed() -> list[dict[str, Any]] | None:
        code, messages = request("GET", f"{push_service}/messages")
        return messages if code == 200 and messages else None

    [message] = wait_until(pushed, timeout_s=30, what="a push message")
    assert message["label"] == "phone"
    assert "PostgresDown" in message["payload"]["title"]
    assert "ne répond plus" in message["payload"]["body"]
    assert message["urgency"] == "high"
    sent = {d["channel"] for d in tocsin.deliveries(status="sent")}
    assert "push" in sent
