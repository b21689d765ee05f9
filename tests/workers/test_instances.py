"""The instance heartbeat: rule-set hashes compared, a mismatch logged once per change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from router.clock import FakeClock
from router.instances import Identity, InstanceStatus
from router.metrics import REGISTRY
from router.store import SqliteStore
from router.workers.instances import InstanceHeartbeat

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """One store that both heartbeats write to (as several instances share PostgreSQL)."""
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


class _Hash:
    """The rule-set hash in force, changed by the test (a reload)."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self) -> str:
        return self.value


def _heartbeat(store: SqliteStore, clock: FakeClock, instance_id: str,
               rules_hash: _Hash) -> InstanceHeartbeat:
    status = InstanceStatus(Identity(instance_id, "9.9", "sqlite", clock.now()))
    return InstanceHeartbeat(store, status, rules_hash=rules_hash, clock=clock,
                             heartbeat_s=5, stale_after_s=30)


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_mismatch_is_logged_once_per_change_and_exported(store: SqliteStore) -> None:
    """b's other rule set: one warning at a (not at every beat), the gauge counts it,
    the status describes it; once b reloads the same rules, one info line and 0."""
    clock = FakeClock(T0)
    hash_a, hash_b = _Hash("aaaa"), _Hash("bbbb")
    a = _heartbeat(store, clock, "tocsin-a", hash_a)
    b = _heartbeat(store, clock, "tocsin-b", hash_b)
    with capture_logs() as logs:
        await b.beat()
        first = await a.beat()
        clock.advance(5)
        await b.beat()
        again = await a.beat()
    assert not first.agrees and [i.instance_id for i in again.differing] == ["tocsin-b"]
    warnings = [e for e in logs if e["event"] == "instances.rules_mismatch"]
    assert [w["others"] for w in warnings] == [{"tocsin-b": "bbbb"}, {"tocsin-a": "aaaa"}]
    assert _gauge("tocsin_rules_hash_mismatch") == 1
    assert _gauge("tocsin_instances") == 2
    assert _gauge("tocsin_instance_info", instance="tocsin-a", version="9.9",
                  rules_hash="aaaa", store="sqlite") == 1
    assert "tocsin-b (bbbb)" in str(a._status.detail()["rules_mismatch"])

    hash_b.value = "aaaa"  # b reloaded the same rule files as a
    with capture_logs() as logs:
        clock.advance(5)
        await b.beat()
        agreed = await a.beat()
    assert agreed.agrees and "rules_mismatch" not in a._status.detail()
    assert [e["event"] for e in logs if e["event"].startswith("instances.")] == [
        "instances.rules_agree", "instances.rules_agree"]
    assert _gauge("tocsin_rules_hash_mismatch") == 0
    assert _gauge("tocsin_instance_info", instance="tocsin-b", version="9.9",
                  rules_hash="bbbb", store="sqlite") is None  # the old series is gone


async def test_an_instance_gone_quiet_no_longer_counts(store: SqliteStore) -> None:
    """A differing instance not heard of for stale_after_s is no longer a mismatch."""
    clock = FakeClock(T0)
    a = _heartbeat(store, clock, "tocsin-a", _Hash("aaaa"))
    await _heartbeat(store, clock, "tocsin-dead", _Hash("bbbb")).beat()
    assert not (await a.beat()).agrees
    clock.advance(31)
    verdict = await a.beat()
    assert verdict.agrees and [i.instance_id for i in verdict.seen] == ["tocsin-a"]
