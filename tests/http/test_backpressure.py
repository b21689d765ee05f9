"""Back-pressure over real HTTP: the webhook answers 503 + Retry-After over a backlog
bound and 200 again once it drained; /metrics shows the backlog per stage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.backpressure import Backpressure
from router.clock import FakeClock
from router.config import ServiceConfig
from router.http.state import BACKPRESSURE
from router.store import SqliteStore
from tests.incidents.harness import T_MON_10, Harness, load, make_alert

from .conftest import metric

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
SINGLE = (FIXTURES / "01-firing-single.json").read_bytes()
GROUPED = (FIXTURES / "04-group-partial-resolved.json").read_bytes()  # 4 alerts
URL = "/webhook/alertmanager"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def h(tmp_path: Path, store: SqliteStore) -> Harness:
    return Harness(store, load(tmp_path), FakeClock(T_MON_10))


@pytest.fixture
async def client(h: Harness) -> AsyncIterator[TestClient[Any, Any]]:
    """The app (workers stopped: nothing routes or flushes) on the harness's store and
    clock, with small back-pressure bounds."""
    config = ServiceConfig.model_validate({
        "backpressure": {"max_intake_pending": 3, "max_overdue_incidents": 2,
                         "resume_ratio": 0.5, "retry_after_s": 7},
    })
    app = create_app(config, rules=h.rules, store=h.store, clock=h.clock, run_workers=False)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def _pressure(client: TestClient[Any, Any]) -> Backpressure:
    return client.app[BACKPRESSURE]


def _rejected() -> float:
    return metric("tocsin_webhook_rejected_requests_total", status="503", reason="backpressure")


async def _route_everything(h: Harness) -> None:
    """Mark every intake row processed (what the intake processor does after routing)."""
    rows = await h.store.fetch_intake(1000)
    await h.store.commit_plan([i for i, _ in rows], [], now=h.clock.now(), deadline_s=60)


async def test_webhook_answers_503_over_the_intake_bound_and_200_once_drained(
    client: TestClient[Any, Any], h: Harness,
) -> None:
    """Reproducer of the flood (every request 200 while routing fell behind): over the
    bound the webhook answers 503 with Retry-After and the bound's name, persists nothing,
    counts reason=backpressure; below the resume level it accepts again."""
    assert (await client.post(URL, data=GROUPED, headers=JSON)).status == 200
    await _pressure(client).sample()  # 4 unrouted > 3
    before = _rejected()
    response = await client.post(URL, data=SINGLE, headers=JSON)
    assert response.status == 503
    assert response.headers["Retry-After"] == "7"
    body = await response.json()
    assert body["status"] == "error"
    assert "backpressure.max_intake_pending (3)" in body["error"]
    assert "4 accepted alerts not yet routed" in body["error"]
    assert _rejected() == before + 1
    assert len(await h.store.fetch_intake(10)) == 4  # the rejected alert was not persisted

    await _route_everything(h)
    assert await _pressure(client).sample() is None
    response = await client.post(URL, data=SINGLE, headers=JSON)
    assert response.status == 200
    assert len(await h.store.fetch_intake(10)) == 1


async def test_webhook_answers_503_while_incidents_are_overdue(
    client: TestClient[Any, Any], h: Harness,
) -> None:
    """Overdue incidents (the scheduler behind) hold the webhook back too; the 503 names
    backpressure.max_overdue_incidents."""
    await h.receive(*(make_alert(f"Late{i}", starts_at=h.clock.now()) for i in range(3)))
    h.clock.advance(60)
    await _pressure(client).sample()
    response = await client.post(URL, data=SINGLE, headers=JSON)
    assert response.status == 503
    assert "3 incidents overdue exceed backpressure.max_overdue_incidents (2)" in (
        await response.json())["error"]
    await h.tick(0)  # the scheduler catches up
    await _pressure(client).sample()
    assert (await client.post(URL, data=SINGLE, headers=JSON)).status == 200


async def test_metrics_show_overdue_incidents_and_the_oldest_age_per_stage(
    client: TestClient[Any, Any], h: Harness,
) -> None:
    """Reproducer of the invisible backlog (74k overdue, tocsin_intake_pending 0): with the
    scheduler stopped, a scrape shows the overdue incidents and how late the oldest is."""
    await h.receive(*(make_alert(f"Due{i}", starts_at=h.clock.now()) for i in range(5)))
    h.clock.advance(100)  # due at +30 s: 70 s late
    text = await (await client.get("/metrics")).text()
    assert 'tocsin_backlog_items{stage="incidents"} 5.0' in text
    assert 'tocsin_backlog_oldest_age_seconds{stage="incidents"} 70.0' in text
    assert 'tocsin_backlog_items{stage="intake"} 0.0' in text
    assert "tocsin_intake_pending 0.0" in text  # routed: the old gauge could not tell
    assert 'tocsin_backlog_items{stage="deliveries"} 0.0' in text
