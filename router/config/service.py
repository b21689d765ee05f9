"""The whole service configuration: every section, and the top-level keys."""

from __future__ import annotations

from pydantic import Field, field_validator

from router.config.acks import AcksConfig
from router.config.backpressure import BackpressureConfig
from router.config.channels import SnsConfig, WebPushConfig
from router.config.dispatch import DispatchConfig
from router.config.http import ApiConfig, WebhookConfig
from router.config.incidents import IncidentsConfig
from router.config.kafka import KafkaConfig
from router.config.limits import MemoryConfig, TemplatesConfig
from router.config.log import LogConfig
from router.config.retention import RetentionConfig
from router.config.smtp import SmtpConfig
from router.strict import Strict

__all__ = ["ServiceConfig", "parse_listen"]


class ServiceConfig(Strict):
    """The whole service configuration (``tocsin serve --config FILE``)."""

    listen: str = "127.0.0.1:9095"
    state_url: str = "sqlite:///var/tocsin.db"
    rules: list[str] = Field(default_factory=lambda: ["rules/"], min_length=1)
    # Seconds between checks of the rule files for changes (hot reload); 0 disables.
    rules_poll_interval_s: float = Field(default=2.0, ge=0)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)  # API tokens and their scopes
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)  # incident scheduler
    retention: RetentionConfig = Field(default_factory=RetentionConfig)  # history kept
    # backlog bounds above which ingest is held back (webhook 503, Kafka paused)
    backpressure: BackpressureConfig = Field(default_factory=BackpressureConfig)
    kafka: KafkaConfig | None = None  # Kafka source / cluster ingest (docs/kafka.md)
    sns: SnsConfig | None = None  # SMS and topics through AWS SNS (docs/channels.md)
    webpush: WebPushConfig | None = None  # Web Push (docs/channels.md)
    acks: AcksConfig = Field(default_factory=AcksConfig)  # acknowledgement links

    @field_validator("listen")
    @classmethod
    def _listen_valid(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("state_url")
    @classmethod
    def _state_url_valid(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0].lower()
        if not value.startswith("sqlite:///") and not (
                scheme in ("postgresql", "postgres") and value.partition(":")[2][:2] == "//"):
            raise ValueError(
                "must be a sqlite URL such as sqlite:///var/tocsin.db (relative path) or "
                "sqlite:////srv/tocsin/state.db (absolute path), or a PostgreSQL URL such as "
                "postgresql://tocsin@db.example:5432/tocsin"
            )
        return value

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``; IPv6 hosts without brackets."""
        return parse_listen(self.listen)


def parse_listen(value: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6addr]:port`` into ``(host, port)``.

    Raises ValueError with a readable message (used as a pydantic validator too).
    """
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"expected [ipv6]:port such as [::1]:9095, got {value!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(
                f"expected host:port such as 127.0.0.1:9095 (IPv6: [::1]:9095), got {value!r}"
            )
    if not host:
        raise ValueError(f"the host is missing in {value!r} (use 0.0.0.0:PORT for all interfaces)")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535 in {value!r}")
    return host, int(port_text)
