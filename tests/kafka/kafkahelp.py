"""Small aiokafka helpers for the Kafka tests (produce, read a topic, committed offsets)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


def webhook_body(name: str, **labels: str) -> bytes:
    """A one-alert Alertmanager webhook body with a fixed startsAt (deterministic)."""
    alert = {"labels": {"alertname": name, **labels}, "annotations": {"summary": name},
             "startsAt": "2024-05-01T10:00:00Z"}
    return json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    partition: int | None = None,
) -> None:
    """Produce ``values`` in order and wait for the acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for index, value in enumerate(values):
            key = keys[index] if keys is not None else None
            await producer.send_and_wait(topic, value, key=key, headers=list(headers),
                                         partition=partition)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[Any]:
    """Read ``count`` records of ``topic`` from the beginning (no group)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found.extend(records)
    finally:
        await consumer.stop()
    return found


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (missing when none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        result: dict[int, int] = {}
        for partition in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                result[partition] = offset
        return result
    finally:
        await consumer.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0
) -> None:
    """Poll ``check`` until true (generous deadline for a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
