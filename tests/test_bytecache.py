"""Caches keyed by alert content are bounded in bytes (router/bytecache.py), wherever used."""

from __future__ import annotations

import gc
import json
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.alertmanager import parse_webhook
from router.bytecache import (
    ByteLRU,
    LockedByteLRU,
    cache_bytes,
    cache_share,
    labels_bytes,
    set_cache_bytes,
)
from router.clock import FakeClock
from router.rules import RuleSet, load_rules
from router.store import SqliteStore
from router.workers.intake import IntakeProcessor
from tests.store.factories import T0, make_record

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _size(key: str, value: str) -> int:
    return len(key) + len(value)


@pytest.fixture
def small_caches() -> Iterator[None]:
    """memory.cache_bytes = 4 MiB for the test, restored after."""
    before = cache_bytes()
    set_cache_bytes(4 * MB)
    yield
    set_cache_bytes(before)


def test_one_megabyte_values_stay_under_the_byte_cap() -> None:
    """Twenty 1 MB values in a 4 MB cache: the bytes held never pass the cap."""
    cache: ByteLRU[str, str] = ByteLRU(_size, max_bytes=4 * MB + 100)
    for i in range(20):
        cache.put(f"k{i}", str(i % 10) * MB)
        assert cache.nbytes <= cache.max_bytes
    assert len(cache) == 4
    assert cache.nbytes == sum(_size(f"k{i}", "x" * MB) for i in range(16, 20))


def test_least_recently_used_is_evicted_first() -> None:
    """A read refreshes an entry: the one evicted is the one untouched longest."""
    cache: ByteLRU[str, str] = ByteLRU(_size, max_bytes=30)
    cache.put("a", "x" * 9)
    cache.put("b", "x" * 9)
    cache.put("c", "x" * 9)
    assert cache.get("a") is not None
    cache.put("d", "x" * 9)
    assert "b" not in cache
    assert {"a", "c", "d"} == {k for k in "abcd" if k in cache}


def test_an_entry_larger_than_the_cap_is_not_stored() -> None:
    """An oversized entry is refused (a miss later), not allowed to evict everything."""
    cache: ByteLRU[str, str] = ByteLRU(_size, max_bytes=100)
    cache.put("a", "x" * 10)
    assert cache.put("big", "x" * 1000) is False
    assert "a" in cache and "big" not in cache


def test_without_eviction_a_full_cache_refuses() -> None:
    """``evict=False`` (a hand-off buffer) keeps its oldest entries and refuses the new."""
    cache: ByteLRU[str, str] = ByteLRU(_size, max_bytes=25)
    assert cache.put("a", "x" * 9) and cache.put("b", "x" * 9)
    assert cache.put("c", "x" * 9, evict=False) is False
    assert "a" in cache and "b" in cache and cache.nbytes == 20
    assert cache.pop("a") == "x" * 9 and cache.nbytes == 10


def test_shared_caches_follow_the_configured_total(small_caches: None) -> None:
    """Changing memory.cache_bytes shrinks the caches that take a share of it now."""
    cache: ByteLRU[str, str] = ByteLRU(_size, share="routes")
    assert cache.max_bytes == cache_share("routes") == 2 * MB
    for i in range(10):
        cache.put(f"k{i}", "x" * 100_000)
    set_cache_bytes(MB)
    assert cache.max_bytes == MB // 2 and cache.nbytes <= MB // 2


def _webhook(i: int) -> bytes:
    return json.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": [{
        "status": "firing", "labels": {"alertname": "Big", "payload": f"{i:07d}" * 150_000},
        "annotations": {}, "startsAt": "2024-05-02T14:03:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}]}).encode()


def test_fingerprint_memo_keeps_a_bounded_amount_of_label_bytes(small_caches: None) -> None:
    """Reproducer: 30 alerts with distinct 1 MB labels no longer stay in the fingerprint
    memo (it kept every label set, up to 65k of them)."""
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(30):
            records = parse_webhook(_webhook(i), received_at=datetime.now(UTC))
            assert labels_bytes(records[0].alert.labels) > MB
            del records
        gc.collect()
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept < cache_share("fingerprints") + 2 * MB


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "tocsin.db"))
    await s.start()
    yield s
    await s.close()


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules([REPO / "rules"])


async def test_routing_memo_and_intake_buffer_stay_under_their_shares(
    store: SqliteStore, rules: RuleSet, small_caches: None
) -> None:
    """Reproducer: 30 routed alerts with distinct 1 MB labels; the routing memo (16k entries
    before) and the records kept for routing stay within their byte shares."""
    proc = IntakeProcessor(store, lambda: rules, clock=FakeClock(T0), deadline_s=600)
    for i in range(30):
        record = make_record("HostDown", instance=f"{i:07d}" * 150_000)
        await store.append_intake([replace(record, received_at=T0)])
        assert store._fresh.nbytes <= cache_share("intake")
        assert await proc.process_once() == 1
        assert proc._memo.nbytes <= cache_share("routes")
    assert 0 < len(proc._memo) < 30



def _hammer(cache: ByteLRU[int, str]) -> list[BaseException]:
    """4 threads missing, filling and evicting the same keys, the GIL switching as often
    as it can; returns what they raised."""
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(50_000):
                key = (seed * 7 + i) % 23
                if cache.get(key) is None:
                    cache.put(key, str(key))
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertion
            errors.append(exc)

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(before)
    return errors


def test_a_locked_cache_shared_by_threads_stays_consistent() -> None:
    """LockedByteLRU shared by threads: no error, and its byte count is exactly what it
    holds (full: ten entries of 100 bytes). A plain ByteLRU hammered so loses track
    of its bytes (it thinks itself full with a fraction of its entries)."""
    cache: LockedByteLRU[int, str] = LockedByteLRU(lambda _k, _v: 100, max_bytes=1000)
    assert _hammer(cache) == []
    assert cache.nbytes == sum(cost for _, cost in cache._data.values()) == 1000


def test_the_fingerprint_memo_is_locked() -> None:
    """Reproducer: the fingerprint memo of parse_webhook was a plain ByteLRU, corrupted
    once large webhook bodies are parsed in worker threads beside the loop."""
    from adapters.alertmanager import _FINGERPRINTS

    assert isinstance(_FINGERPRINTS, LockedByteLRU)
