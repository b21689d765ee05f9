"""GET /api/v1/incidents (filters) and GET /api/v1/incidents/{id} (timeline) over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.clock import FakeClock
from router.config import ServiceConfig
from router.http import ServiceState
from router.store import SqliteStore
from tests.incidents.harness import T_MON_10, Harness, load, make_alert


async def client_for(store: SqliteStore, tmp_path: Path) -> TestClient[Any, Any]:
    config = ServiceConfig.model_validate({"state_url": f"sqlite:///{tmp_path / 'x.db'}"})
    app = create_app(config, rules=load(tmp_path), store=store, state=ServiceState(),
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_list_filters_and_detail_timeline(tmp_path: Path, store: SqliteStore) -> None:
    """State, route and audience filters; the detail has alerts, timeline, notifications."""
    h = Harness(store, load(tmp_path), FakeClock(T_MON_10))
    await h.receive(make_alert("HostDown", instance="a", starts_at=T_MON_10))
    await h.receive(make_alert("PaymentsDown", audience="customers", starts_at=T_MON_10))
    await h.tick(30)
    client = await client_for(store, tmp_path)
    try:
        everything = await (await client.get("/api/v1/incidents")).json()
        assert len(everything) == 2
        by_audience = await (await client.get("/api/v1/incidents?audience=customers")).json()
        assert [i["group_labels"] for i in by_audience] == [{"alertname": "PaymentsDown"}]
        # The unnamed root route's identity is its matchers path, "{}" (URL-encoded).
        by_route = await (await client.get("/api/v1/incidents?route=%7B%7D&state=open")).json()
        assert [i["route_id"] for i in by_route] == ["{}"]
        assert await (await client.get("/api/v1/incidents?state=resolved")).json() == []
        detail = await (await client.get(f"/api/v1/incidents/{by_route[0]['id']}")).json()
        assert [e["event"] for e in detail["timeline"]] == [
            "opened", "alert_joined", "notice_planned"]
        assert {n["recipient"] for n in detail["notifications"]} == {
            "a***@e***.com", "b***@e***.com"}
        assert detail["alerts"][0]["labels"]["instance"] == "a"
    finally:
        await client.close()


async def test_bad_queries_and_unknown_ids(tmp_path: Path, store: SqliteStore) -> None:
    """A bad state is a 400 naming the parameter; an unknown id is a 404."""
    client = await client_for(store, tmp_path)
    try:
        bad = await client.get("/api/v1/incidents?state=closed")
        assert bad.status == 400
        assert (await bad.json())["location"] == "query.state"
        assert (await client.get("/api/v1/incidents/inc-nope")).status == 404
    finally:
        await client.close()
