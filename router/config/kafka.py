"""The ``kafka`` section of the service configuration (source, dead letters, cluster ingest).

Every key is overridable from the environment like any other (``TOCSIN_KAFKA__TOPICS``,
``TOCSIN_KAFKA__SASL__PASSWORD``, ...), so the consumer can be enabled by the
environment alone::

    TOCSIN_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092
    TOCSIN_KAFKA__TOPICS=alerts
    TOCSIN_KAFKA__GROUP_ID=tocsin

The consumer runs when ``topics`` or ``topic_pattern`` is set; ``publish.topic`` turns on
cluster ingest (the webhook publishes to Kafka instead of writing the local intake).
The client tuning defaults are aiokafka's, except ``max_records``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from router.strict import Strict

__all__ = [
    "MESSAGE_FORMATS",
    "KafkaConfig",
    "KafkaLabelsConfig",
    "KafkaPublishConfig",
    "KafkaSaslConfig",
    "KafkaSslConfig",
    "MessageFormat",
]

#: ``alertmanager_webhook``: a whole webhook body (v4); ``alertmanager_alert``: one alert
#: object as found in a webhook's ``alerts`` list; ``event``: a generic event.
MessageFormat = Literal["alertmanager_webhook", "alertmanager_alert", "event"]
MESSAGE_FORMATS: tuple[str, ...] = ("alertmanager_webhook", "alertmanager_alert", "event")

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _label_name(value: str | None) -> str | None:
    if value is not None and not _LABEL_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid label name ([A-Za-z_][A-Za-z0-9_]*)")
    return value


class KafkaSaslConfig(Strict):
    """SASL credentials (``security_protocol`` SASL_PLAINTEXT or SASL_SSL)."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: str = Field(min_length=1)
    password: SecretStr


class KafkaSslConfig(Strict):
    """TLS options passed through to the client (``security_protocol`` SSL or SASL_SSL)."""

    cafile: str | None = None  # PEM bundle to trust (default: the system CAs)
    certfile: str | None = None  # client certificate (mutual TLS)
    keyfile: str | None = None
    password: SecretStr | None = None  # of the key file
    check_hostname: bool = True


class KafkaLabelsConfig(Strict):
    """Message metadata exposed to the rules as labels; each value is the label name.

    Unset (the default) adds nothing. An alert's own label of the same name wins. These
    labels are part of the alert identity (fingerprint), like any other label.
    """

    topic: str | None = None  # e.g. kafka_topic
    key: str | None = None  # e.g. kafka_key (UTF-8 decoded; undecodable keys are skipped)
    partition: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # header name -> label name

    @field_validator("topic", "key", "partition")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        return _label_name(value)

    @field_validator("headers")
    @classmethod
    def _valid_header_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for label in value.values():
            _label_name(label)
        return value


class KafkaPublishConfig(Strict):
    """Cluster ingest: ``POST /webhook/alertmanager`` publishes to ``topic`` (acks=all).

    ``key: fingerprint`` publishes one ``alertmanager_alert`` message per alert keyed by
    its fingerprint; ``key: group_key`` publishes the whole body as one
    ``alertmanager_webhook`` message keyed by the Alertmanager group key.
    """

    topic: str | None = None
    key: Literal["fingerprint", "group_key"] = "fingerprint"
    timeout_s: float = Field(default=10.0, gt=0)
    linger_ms: int = Field(default=5, ge=0)


#: Keys of earlier versions, now in the ``backpressure`` section.
_MOVED = frozenset({"pause_depth", "resume_depth", "depth_check_interval_s"})


class KafkaConfig(Strict):
    """Kafka connection, consumer group, message formats, dead letters, back-pressure."""

    bootstrap_servers: list[str] = Field(min_length=1)
    client_id: str = "tocsin"
    group_id: str = Field(default="tocsin", min_length=1)
    topics: list[str] = Field(default_factory=list)
    topic_pattern: str | None = None  # a regex; used instead of `topics`
    default_format: MessageFormat = "alertmanager_webhook"
    formats: dict[str, MessageFormat] = Field(default_factory=dict)  # topic -> format
    labels: KafkaLabelsConfig = Field(default_factory=KafkaLabelsConfig)
    dead_letter_topic: str = Field(default="tocsin-dead-letter", min_length=1)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    # security
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: KafkaSaslConfig | None = None
    ssl: KafkaSslConfig | None = None

    # client tuning
    max_records: int = Field(default=500, ge=1, le=100_000)
    fetch_timeout_ms: int = Field(default=500, ge=1)
    session_timeout_ms: int = Field(default=10_000, ge=100)
    heartbeat_interval_ms: int = Field(default=3_000, ge=10)
    rebalance_timeout_ms: int | None = Field(default=None, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    request_timeout_ms: int = Field(default=40_000, ge=100)

    # at-least-once hand-off and health
    commit_interval_s: float = Field(default=1.0, ge=0)
    dead_letter_retry_s: float = Field(default=1.0, gt=0)
    unreachable_grace_s: float = Field(default=30.0, gt=0)
    health_interval_s: float = Field(default=5.0, gt=0)

    publish: KafkaPublishConfig = Field(default_factory=KafkaPublishConfig)

    @field_validator("topic_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            moved = sorted(key for key in _MOVED if key in data)
            if moved:
                raise ValueError(
                    f"kafka.{moved[0]} was replaced by the backpressure section (one decision "
                    "for the webhook and Kafka): set backpressure.max_intake_pending, "
                    "max_overdue_incidents, max_due_deliveries, resume_ratio, check_interval_s"
                )
        return data

    @model_validator(mode="after")
    def _consistent(self) -> KafkaConfig:
        if self.topics and self.topic_pattern is not None:
            raise ValueError("kafka.topics and kafka.topic_pattern are exclusive: set one")
        if not self.consumer_enabled and self.publish.topic is None:
            raise ValueError(
                "kafka needs topics (or topic_pattern) to consume, or publish.topic for "
                "cluster ingest"
            )
        if self.security_protocol.startswith("SASL") and self.sasl is None:
            raise ValueError(f"kafka.security_protocol {self.security_protocol} needs kafka.sasl")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("kafka.heartbeat_interval_ms must be < kafka.session_timeout_ms")
        if self.dead_letter_topic in self.topics:
            raise ValueError("kafka.dead_letter_topic must not be one of kafka.topics")
        return self

    @property
    def consumer_enabled(self) -> bool:
        """True when there is something to consume."""
        return bool(self.topics) or self.topic_pattern is not None

    def format_for(self, topic: str) -> MessageFormat:
        """The message format configured for ``topic``."""
        return self.formats.get(topic, self.default_format)
