"""The explicit table of Tocsin's edges: outbound channels and inbound sources.

``router`` never imports a concrete adapter by name; it reaches every edge through this
module only (``tests/test_architecture.py`` checks it). ``CHANNEL_KINDS`` is the set of
channel names rule files may use; :func:`build_channels` instantiates the configured
ones. The inbound edges (the Alertmanager webhook parser, the Kafka source and the
cluster-ingest publisher) are re-exported below for the HTTP app and the service wiring.
"""

from __future__ import annotations

from adapters.alertmanager import SOURCE as ALERTMANAGER_SOURCE
from adapters.alertmanager import WebhookPayloadError, count_alerts, parse_webhook
from adapters.kafka_publisher import KafkaPublisher, PublishError
from adapters.kafka_source import KafkaSource
from adapters.smtp import SmtpChannel, SmtpSettings
from adapters.sns import SmsSender, SnsClient, SnsSettings, SnsSmsChannel, SnsTopicChannel
from adapters.webpush import SubscriptionStore, WebPushChannel, WebPushSettings
from router.channels_config import SnsConfig, WebPushConfig
from router.dispatch.channel import Channel
from router.sms import SmsPolicy

__all__ = [
    "ALERTMANAGER_SOURCE",
    "CHANNEL_KINDS",
    "KafkaPublisher",
    "KafkaSource",
    "PublishError",
    "SmtpSettings",
    "SubscriptionStore",
    "WebhookPayloadError",
    "build_channels",
    "count_alerts",
    "parse_webhook",
    "sns_settings",
    "webpush_settings",
]

#: Channel names known to the rules (cross-reference checks) and to the dispatcher.
CHANNEL_KINDS: frozenset[str] = frozenset({"email", "sms", "topic", "push"})


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
        client = SnsClient(sns)  # one client and thread pool for both SNS channels
        channels["sms"] = SnsSmsChannel(client, owns_client=True)
        channels["topic"] = SnsTopicChannel(client, owns_client=False)
    if webpush is not None and subscriptions is not None:
        channels["push"] = WebPushChannel(webpush, subscriptions)
    return channels


def sns_settings(config: SnsConfig) -> SnsSettings:
    """The SNS adapter settings from the ``sns`` section (secret unwrapped here only)."""
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
    return WebPushSettings(vapid_private_key=config.vapid_private_key.get_secret_value(),
                           vapid_subject=config.vapid_subject, timeout_s=config.timeout_s)
