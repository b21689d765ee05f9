"""An HTTP app on a real TCP socket (127.0.0.1, free port) over a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.config import ServiceConfig
from router.http import STATE, STORE, ServiceState
from router.metrics import REGISTRY
from router.rules import load_rules
from router.store import Store

REPO = Path(__file__).resolve().parents[2]

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def metric(name: str, **labels: str) -> float:
    """Current value of one sample of the Tocsin registry (0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels)
    return value if value is not None else 0.0


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[ClientFactory]:
    """Build a client for an app with the given config overrides (workers not running)."""
    clients: list[TestClient[Any, Any]] = []
    rules = load_rules([REPO / "rules"])

    async def factory(**overrides: Any) -> TestClient[Any, Any]:
        data: dict[str, Any] = {"state_url": f"sqlite:///{tmp_path / 'state' / 'tocsin.db'}"}
        data.update(overrides)
        config = ServiceConfig.model_validate(data)
        app = create_app(config, rules=rules, state=ServiceState(), run_workers=False)
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    """An app with no webhook authentication."""
    return await make_client()


def store_of(client: TestClient[Any, Any]) -> Store:
    """The started store of the app behind ``client``."""
    return client.app[STORE]


def state_of(client: TestClient[Any, Any]) -> ServiceState:
    """The run state (draining flag) of the app behind ``client``."""
    return client.app[STATE]
