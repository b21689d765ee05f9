"""Cluster ingest: publish accepted webhook alerts to a Kafka topic (acks=all).

Several stateless ingest instances can then feed one pipeline: the consumer group
(:mod:`adapters.kafka.source`) hands the alerts to the intake. The webhook answers 200
only after the broker acknowledged every message of the request.

Keys (``kafka.publish.key``):

- ``fingerprint`` (default): one ``alertmanager_alert`` message per alert, keyed by its
  fingerprint, so every update of one alert lands in one partition, in order.
- ``group_key``: the webhook body as one ``alertmanager_webhook`` message, keyed by the
  Alertmanager group key (the first alert's fingerprint when the sender gave none).

Each message carries the header ``tocsin-format`` naming its format, so the consumer
decodes it whatever the topic's configured format is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from adapters.kafka.client import make_producer
from adapters.kafka.formats import FORMAT_HEADER
from router.config.kafka import KafkaConfig
from router.errors import PublishError
from router.models import Alert, IntakeRecord

__all__ = ["KafkaPublisher", "PublishError", "alert_message"]


def alert_message(alert: Alert) -> bytes:
    """One alert as an Alertmanager-shaped JSON object (the ``alertmanager_alert`` format)."""
    return json.dumps(
        {
            "status": alert.status,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "startsAt": _time(alert.starts_at),
            "endsAt": _time(alert.ends_at) if alert.ends_at is not None else "",
            "generatorURL": alert.generator_url,
            "fingerprint": alert.fingerprint,
        },
        separators=(",", ":"),
    ).encode("utf-8")


class KafkaPublisher:
    """Publishes webhook alerts; ``start()`` before use, ``close()`` at shutdown."""

    def __init__(self, config: KafkaConfig, *, producer: Any = None) -> None:
        if config.publish.topic is None:
            raise ValueError("kafka.publish.topic is not set")
        self._topic = config.publish.topic
        self._by_group = config.publish.key == "group_key"
        self._timeout_s = config.publish.timeout_s
        self._producer = producer or make_producer(config, linger_ms=config.publish.linger_ms)

    @property
    def topic(self) -> str:
        """The topic messages are published to."""
        return self._topic

    async def start(self) -> None:
        """Connect to the cluster (raises KafkaError when unreachable)."""
        await self._producer.start()

    async def close(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def publish(self, body: bytes, records: Sequence[IntakeRecord]) -> int:
        """Publish one request's alerts; return the number of messages once all are acked.

        Raises PublishError when the broker refused or did not answer in ``timeout_s``.
        """
        if self._by_group:
            group_key = records[0].meta.get("group_key") if records else None
            key = group_key or (records[0].alert.fingerprint if records else "")
            messages = [(key, body, "alertmanager_webhook")]
        else:
            messages = [
                (r.alert.fingerprint, alert_message(r.alert), "alertmanager_alert")
                for r in records
            ]
        try:
            async with asyncio.timeout(self._timeout_s):
                futures = [
                    await self._producer.send(
                        self._topic,
                        value=value,
                        key=key.encode("utf-8"),
                        headers=[(FORMAT_HEADER, fmt.encode())],
                    )
                    for key, value, fmt in messages
                ]
                await asyncio.gather(*futures)
        except TimeoutError:
            raise PublishError(
                f"topic {self._topic!r}: not acknowledged within {self._timeout_s:g}s"
            ) from None
        except KafkaError as exc:
            raise PublishError(f"topic {self._topic!r}: {exc!r}") from exc
        return len(messages)


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
