"""aiokafka client options from the ``kafka`` config section (connection and security).

One place turns :class:`router.config.kafka.KafkaConfig` into keyword arguments for
``AIOKafkaConsumer`` and ``AIOKafkaProducer``: bootstrap servers, client id, request
timeout, security protocol, SASL (PLAIN, SCRAM) and TLS (CA, client certificate, key
password, hostname check). Secrets are unwrapped here only.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]

from router.config.kafka import KafkaConfig

__all__ = ["client_options", "consumer_options", "make_consumer", "make_producer"]


def client_options(config: KafkaConfig) -> dict[str, Any]:
    """Options every client shares: servers, client id, timeouts, security."""
    options: dict[str, Any] = {
        "bootstrap_servers": list(config.bootstrap_servers),
        "client_id": config.client_id,
        "request_timeout_ms": config.request_timeout_ms,
        "security_protocol": config.security_protocol,
    }
    if config.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(config)
    if config.sasl is not None and config.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = config.sasl.mechanism
        options["sasl_plain_username"] = config.sasl.username
        options["sasl_plain_password"] = config.sasl.password.get_secret_value()
    return options


def consumer_options(config: KafkaConfig) -> dict[str, Any]:
    """Consumer group options: manual commits only (at-least-once), client tuning."""
    options = client_options(config)
    options.update(
        group_id=config.group_id,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_interval_ms=config.max_poll_interval_ms,
        max_poll_records=config.max_records,
    )
    if config.rebalance_timeout_ms is not None:
        options["rebalance_timeout_ms"] = config.rebalance_timeout_ms
    return options


def make_consumer(config: KafkaConfig) -> Any:
    """An unstarted ``AIOKafkaConsumer`` (the caller subscribes with its listener)."""
    return AIOKafkaConsumer(**consumer_options(config))


def make_producer(config: KafkaConfig, *, linger_ms: int = 0) -> Any:
    """An unstarted ``AIOKafkaProducer`` that waits for every in-sync replica (acks=all).

    Idempotence stays off: not every Kafka-protocol broker implements InitProducerId,
    and a duplicate produced on retry is harmless downstream (idempotency keys).
    """
    return AIOKafkaProducer(
        **client_options(config),
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
    )


def _ssl_context(config: KafkaConfig) -> ssl.SSLContext:
    tls = config.ssl
    if tls is None:
        return ssl.create_default_context()
    context: ssl.SSLContext = create_ssl_context(
        cafile=tls.cafile,
        certfile=tls.certfile,
        keyfile=tls.keyfile,
        password=tls.password.get_secret_value() if tls.password is not None else None,
    )
    context.check_hostname = tls.check_hostname
    return context
