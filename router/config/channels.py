"""The ``sns`` and ``webpush`` sections of the service configuration (SMS, topics, push).

Both sections are optional: without ``sns`` the ``sms`` and ``topic`` channels are not
configured, without ``webpush`` the ``push`` channel is not (the dispatcher then fails
such deliveries permanently with "no adapter configured for channel ...", visible in the
deliveries API; a route with a ``fallback`` falls back). Every key is overridable from
the environment (``TOCSIN_SNS__REGION``, ``TOCSIN_SNS__ENDPOINT_URL``,
``TOCSIN_WEBPUSH__VAPID_PRIVATE_KEY``, ...), so ``TOCSIN_SNS__REGION=eu-west-1`` alone
enables SMS with the standard AWS credential chain.

Rate limits (``rate_per_s``) are token buckets applied by the dispatcher, per channel;
0 turns a limit off.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from router.push_endpoints import parse_allowed_endpoint
from router.strict import Strict

__all__ = ["SNS_HOST_PATTERN", "SnsAudienceConfig", "SnsConfig", "SnsInboundConfig",
           "WebPushConfig"]

_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{1,11}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: What SigningCertURL and SubscribeURL must match by default: an SNS endpoint of AWS.
SNS_HOST_PATTERN = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


def _sender_id(value: str | None) -> str | None:
    if value is not None and not _SENDER_ID.match(value):
        raise ValueError("a sender id is 1 to 11 letters and digits with at least one letter")
    return value


def _origination(value: str | None) -> str | None:
    if value is not None and not _E164.match(value):
        raise ValueError("an origination number is E.164, such as +18005550100")
    return value


class SnsAudienceConfig(Strict):
    """SMS sender settings for one audience (override the section defaults)."""

    sender_id: str | None = None
    origination_number: str | None = None
    sms_type: Literal["Transactional", "Promotional"] | None = None

    @field_validator("sender_id")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return _sender_id(value)

    @field_validator("origination_number")
    @classmethod
    def _check_origin(cls, value: str | None) -> str | None:
        return _origination(value)


class SnsInboundConfig(Strict):
    """``sns.inbound``: SMS replies that AWS End User Messaging publishes to an SNS topic,
    posted by SNS to ``POST /webhook/sns`` (docs/channels.md, "Two-way SMS").

    The URL patterns are regular expressions matched from the start of the whole URL
    (Python ``re.match``); tests and ``make run`` point them at a local certificate server.
    """

    enabled: bool = False
    # The topics whose messages are accepted (TOCSIN_SNS__INBOUND__TOPIC_ARNS=arn1,arn2).
    topic_arns: list[str] = Field(default_factory=list)
    cert_url_pattern: str = SNS_HOST_PATTERN  # where a SigningCertURL may point
    subscribe_url_pattern: str = SNS_HOST_PATTERN  # where a SubscribeURL may be confirmed
    # A message whose Timestamp is older than this is refused (a replay); one more than
    # max_clock_skew_s in the future too.
    replay_window_s: float = Field(default=3600.0, gt=0)
    max_clock_skew_s: float = Field(default=300.0, ge=0)
    # How long MessageId / inboundMessageId are remembered (duplicates ignored).
    dedup_keep_s: float = Field(default=86400.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)  # certificate fetch, subscription confirm
    # Answer who replied ("Pris en compte: ..." / "Déjà pris par Alice: ...").
    confirm_replies: bool = True

    @field_validator("cert_url_pattern", "subscribe_url_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("topic_arns")
    @classmethod
    def _arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _TOPIC_ARN.match(arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN such as "
                                 "arn:aws:sns:eu-west-1:123456789012:tocsin-replies")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SnsInboundConfig:
        if self.enabled and not self.topic_arns:
            raise ValueError("sns.inbound.enabled needs sns.inbound.topic_arns: the SNS "
                             "topic(s) two-way SMS publishes replies to")
        if self.dedup_keep_s < self.replay_window_s:
            raise ValueError("sns.inbound.dedup_keep_s must be at least replay_window_s "
                             "(a duplicate inside the window must still be known)")
        return self


class SnsConfig(Strict):
    """AWS SNS: direct SMS (channel ``sms``) and topic publish (channel ``topic``).

    Credentials: ``access_key_id``/``secret_access_key`` when given (local emulators),
    otherwise the standard AWS chain (environment, shared files, instance role).
    """

    region: str = "us-east-1"
    endpoint_url: str | None = None  # e.g. http://127.0.0.1:5000 for moto server
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    sms_type: Literal["Transactional", "Promotional"] = "Transactional"
    sender_id: str | None = None
    origination_number: str | None = None
    # Per-audience sender settings: {audience name: {sender_id, origination_number, ...}}.
    audiences: dict[str, SnsAudienceConfig] = Field(default_factory=dict)
    rate_per_s: float = Field(default=20.0, ge=0)  # sms channel; 0 = unlimited
    topic_rate_per_s: float = Field(default=10.0, ge=0)  # topic channel; 0 = unlimited
    timeout_s: float = Field(default=10.0, gt=0)
    max_segments: int = Field(default=3, ge=1, le=10)
    overflow: Literal["truncate", "fail"] = "truncate"
    transliterate: bool = False
    max_workers: int = Field(default=8, ge=1, le=64)  # threads running boto3 calls
    # SMS replies through SNS (POST /webhook/sns); off unless enabled.
    inbound: SnsInboundConfig = Field(default_factory=SnsInboundConfig)

    @field_validator("sender_id")
    @classmethod
    def _check_sender(cls, value: str | None) -> str | None:
        return _sender_id(value)

    @field_validator("origination_number")
    @classmethod
    def _check_origin(cls, value: str | None) -> str | None:
        return _origination(value)

    @model_validator(mode="after")
    def _key_pair(self) -> SnsConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("sns.access_key_id and sns.secret_access_key must be given "
                             "together (or neither, for the standard AWS credential chain)")
        return self


class WebPushConfig(Strict):
    """Web Push (channel ``push``): VAPID identity and the subscription API token."""

    vapid_private_key: SecretStr  # base64url raw key or PEM (`tocsin push vapid-keys`)
    vapid_subject: str = Field(min_length=1)  # mailto:ops@example.com or https://...
    # Bearer token required by the /api/v1/push/subscriptions endpoints.
    api_token: SecretStr
    rate_per_s: float = Field(default=50.0, ge=0)  # 0 = unlimited
    timeout_s: float = Field(default=10.0, gt=0)
    # URL prefixes exempt from the https + public-host rule (router.push_endpoints), e.g.
    # the local demo push service: [http://127.0.0.1:8089/].
    allowed_endpoints: list[str] = Field(default_factory=list)

    @field_validator("allowed_endpoints")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_allowed_endpoint(entry)
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not value.startswith(("mailto:", "https://")):
            raise ValueError("must start with mailto: or https:// (RFC 8292)")
        return value

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters")
        return value
