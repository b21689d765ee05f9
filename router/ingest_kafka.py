"""Kafka in the service: the consumer worker, cluster-ingest publishing, readiness.

Wired by :func:`router.http.app.create_app` when the config has a ``kafka`` section:

- :func:`build_kafka_source`: the :class:`adapters.kafka.source.KafkaSource` that
  ``create_app`` runs as a background worker.
- :func:`kafka_publisher_ctx`: with ``kafka.publish.topic`` set, connects the producer
  that :func:`publish_webhook` uses; the webhook then answers 200 only once the broker
  acknowledged (``acks=all``), and nothing is written to the local intake.
- ``/readyz`` (:mod:`router.http.probes`) asks the source for its reasons.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Final

from aiohttp import hdrs, web

from adapters.registry import KafkaPublisher, KafkaSource, PublishError
from router.http.responses import json_error
from router.http.state import (
    BACKPRESSURE,
    CLOCK,
    CONFIG,
    KAFKA_PUBLISHER,
    KAFKA_SOURCE,
    PROCESSOR,
    STORE,
)
from router.logging import get_logger
from router.metrics import ALERTS_RECEIVED, KAFKA_PUBLISHED, WEBHOOK_REJECTED
from router.models import IntakeRecord

__all__ = [
    "PUBLISH_RETRY_AFTER_S",
    "build_kafka_source",
    "kafka_publisher_ctx",
    "publish_webhook",
]

#: Seconds a sender is asked to wait when the broker did not acknowledge.
PUBLISH_RETRY_AFTER_S: Final = 5

_log = get_logger("router.ingest_kafka")


def build_kafka_source(app: web.Application) -> KafkaSource | None:
    """The consumer for this app (None without ``kafka.topics``/``topic_pattern``).

    ``create_app`` runs it as a background worker set up after the intake processor (so
    torn down before it): at shutdown it finishes its batch, commits what was handed
    off and leaves the group.
    """
    config = app[CONFIG].kafka
    if config is None or not config.consumer_enabled:
        return None
    source = KafkaSource(config, app[STORE], clock=app[CLOCK], on_handoff=app[PROCESSOR].notify,
                         backpressure=app[BACKPRESSURE])
    app[KAFKA_SOURCE] = source
    return source


async def kafka_publisher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect the cluster-ingest producer (no-op without ``kafka.publish.topic``)."""
    config = app[CONFIG].kafka
    if config is None or config.publish.topic is None:
        yield
        return
    publisher = KafkaPublisher(config)
    await publisher.start()
    app[KAFKA_PUBLISHER] = publisher
    _log.info("cluster ingest: webhook alerts are published to kafka", topic=publisher.topic)
    try:
        yield
    finally:
        await publisher.close()


async def publish_webhook(
    publisher: KafkaPublisher, body: bytes, records: Sequence[IntakeRecord]
) -> web.Response:
    """Publish an accepted webhook to Kafka and answer: 200 once acked, else 503."""
    try:
        messages = await publisher.publish(body, records)
    except asyncio.CancelledError:
        raise
    except PublishError as exc:
        _log.error("kafka publish failed", error=str(exc), alerts=len(records))
        KAFKA_PUBLISHED.labels(result="failed").inc(len(records))
        WEBHOOK_REJECTED.labels(status="503", reason="kafka_unavailable").inc()
        ALERTS_RECEIVED.labels(source="alertmanager", result="unavailable").inc(len(records))
        return json_error(
            503,
            "the Kafka cluster did not acknowledge the alerts; they were not accepted, "
            "retry later",
            headers=[(hdrs.RETRY_AFTER, str(PUBLISH_RETRY_AFTER_S))],
        )
    KAFKA_PUBLISHED.labels(result="acked").inc(len(records))
    ALERTS_RECEIVED.labels(source="alertmanager", result="accepted").inc(len(records))
    return web.json_response(
        {"status": "success", "accepted": len(records), "published": messages}
    )
