"""The explicit table of Tocsin's edges: outbound channels and inbound sources.

``router`` never imports a concrete adapter by name; it reaches every edge through this
module only (``tests/test_architecture.py`` checks it). ``CHANNEL_KINDS`` (defined in
:mod:`router.models`) is the set of channel names rule files may use;
:func:`build_channels` instantiates the configured ones. The inbound edges (the
Alertmanager webhook parser, the Kafka source, the cluster-ingest publisher and the SNS
inbound client that fetches signing certificates for ``POST /webhook/sns``) are
re-exported below for the HTTP app and the service wiring.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from adapters.alertmanager import SOURCE as ALERTMANAGER_SOURCE
from adapters.alertmanager import (
    WebhookLimits,
    WebhookPayloadError,
    count_alerts,
    parse_webhook,
)
from adapters.smtp import SmtpChannel, SmtpSettings
from adapters.sns_inbound import SnsInboundClient, SnsInboundSettings
from router.channel import Channel
from router.config.channels import SnsConfig, SnsInboundConfig, WebPushConfig
from router.models import CHANNEL_KINDS
from router.sms import SmsPolicy

if TYPE_CHECKING:
    from adapters.kafka.publisher import KafkaPublisher, PublishError
    from adapters.kafka.source import KafkaSource
    from adapters.sns import SnsSettings
    from adapters.webpush import SubscriptionStore, WebPushSettings

#: Edges whose client libraries (aiokafka, boto3, pywebpush + cryptography) weigh tens of
#: MiB: their modules load on first use, so a service that does not configure them never
#: pays for them (memory, start time).
_LAZY: dict[str, str] = {
    "KafkaPublisher": "adapters.kafka.publisher",
    "PublishError": "adapters.kafka.publisher",
    "KafkaSource": "adapters.kafka.source",
    "SubscriptionStore": "adapters.webpush",
}


def __getattr__(name: str) -> object:
    """Load a lazily imported edge on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "ALERTMANAGER_SOURCE",
    "CHANNEL_KINDS",
    "KafkaPublisher",
    "KafkaSource",
    "PublishError",
    "SmtpSettings",
    "SnsInboundClient",
    "SnsInboundSettings",
    "SubscriptionStore",
    "WebhookLimits",
    "WebhookPayloadError",
    "build_channels",
    "count_alerts",
    "parse_webhook",
    "sns_inbound_client",
    "sns_settings",
    "webpush_settings",
]


def build_channels(smtp: SmtpSettings | None, sns: SnsSettings | None = None,
                   webpush: WebPushSettings | None = None,
                   subscriptions: SubscriptionStore | None = None) -> dict[str, Channel]:
    """Instantiate every configured channel, keyed by its name.

    A channel without settings is left out: the dispatcher then fails its deliveries
    with a clear "no adapter configured" reason instead of guessing.
    """
    channels: dict[str, Channel] = {}
    if smtp is not None:
        channels["email"] = SmtpChannel(smtp)
    if sns is not None:
        from adapters.sns import SnsClient, SnsSmsChannel, SnsTopicChannel

        client = SnsClient(sns)  # one client and thread pool for both SNS channels
        channels["sms"] = SnsSmsChannel(client, owns_client=True)
        channels["topic"] = SnsTopicChannel(client, owns_client=False)
    if webpush is not None and subscriptions is not None:
        from adapters.webpush import WebPushChannel

        channels["push"] = WebPushChannel(webpush, subscriptions)
    return channels


def sns_settings(config: SnsConfig) -> SnsSettings:
    """The SNS adapter settings from the ``sns`` section (secret unwrapped here only)."""
    from adapters.sns import SmsSender, SnsSettings

    secret = config.secret_access_key
    return SnsSettings(
        region=config.region,
        endpoint_url=config.endpoint_url,
        access_key_id=config.access_key_id,
        secret_access_key=secret.get_secret_value() if secret is not None else None,
        sender=SmsSender(sms_type=config.sms_type, sender_id=config.sender_id,
                         origination_number=config.origination_number),
        audience_senders={
            name: SmsSender(sms_type=a.sms_type or config.sms_type, sender_id=a.sender_id,
                            origination_number=a.origination_number)
            for name, a in config.audiences.items()
        },
        policy=SmsPolicy(max_segments=config.max_segments, overflow=config.overflow,
                         transliterate=config.transliterate),
        timeout_s=config.timeout_s,
        max_workers=config.max_workers,
    )


def webpush_settings(config: WebPushConfig) -> WebPushSettings:
    """The Web Push adapter settings from the ``webpush`` section."""
    from adapters.webpush import WebPushSettings

    return WebPushSettings(vapid_private_key=config.vapid_private_key.get_secret_value(),
                           vapid_subject=config.vapid_subject, timeout_s=config.timeout_s,
                           allowed_endpoints=tuple(config.allowed_endpoints))


def sns_inbound_client(config: SnsInboundConfig) -> SnsInboundClient:
    """The certificate fetcher and subscription confirmer of ``sns.inbound``."""
    return SnsInboundClient(SnsInboundSettings(
        cert_url_pattern=config.cert_url_pattern,
        subscribe_url_pattern=config.subscribe_url_pattern, timeout_s=config.timeout_s))
