"""SMS and topic publishing through AWS SNS (boto3 in a thread pool).

Two channels share one boto3 client and one small thread pool:

- ``sms`` (:class:`SnsSmsChannel`): ``Publish`` with ``PhoneNumber`` (E.164), the
  ``AWS.SNS.SMS.SMSType`` attribute (Transactional by default) and optional
  ``AWS.SNS.SMS.SenderID`` / ``AWS.MM.SMS.OriginationNumber``, chosen per audience. The
  text goes through :func:`router.sms.fit` first (parts budget, truncation or failure,
  optional GSM-7 transliteration) and the receipt carries the parts billed.
- ``topic`` (:class:`SnsTopicChannel`): ``Publish`` with ``TopicArn`` (the recipient), a
  ``Subject`` (ASCII, one line, < 100 characters, as SNS requires) and message
  attributes ``severity`` and ``tocsin.idempotency_key`` so that subscribers can filter
  and deduplicate.

boto3 is blocking, so every call runs in the pool, never in the event loop. botocore's
own retries are off (``total_max_attempts=1``) and connect/read timeouts are set: the
dispatcher owns retries, backoff and deadlines. Errors are classified for it:
throttling, 5xx and connection errors are retryable; ``InvalidParameter``, ``NotFound``,
opted-out numbers, authorisation and credential errors are permanent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers

from router.errors import DeliveryError, excerpt
from router.masking import mask_phone
from router.models import OutboundMessage, Receipt
from router.sms import SmsOverflowError, SmsPolicy, fit

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

__all__ = [
    "SmsSender",
    "SnsClient",
    "SnsSettings",
    "SnsSmsChannel",
    "SnsTopicChannel",
    "classify_sns_error",
    "topic_subject",
]

SmsType = Literal["Transactional", "Promotional"]

#: Error codes that mean "slow down / try later".
_THROTTLING = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "KMSThrottling", "RequestThrottled", "SlowDown",
})
#: Error codes that mean "the service had a problem": try later.
_TRANSIENT = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout",
    "RequestTimeoutException", "KMSDisabled", "KMSInvalidState", "KMSNotFound",
})
_SUBJECT_MAX = 99


@dataclass(frozen=True, slots=True)
class SmsSender:
    """Sender settings of direct SMS (the section defaults, or one audience's)."""

    sms_type: SmsType = "Transactional"
    sender_id: str | None = None
    origination_number: str | None = None


@dataclass(frozen=True, slots=True)
class SnsSettings:
    """Where and how to reach SNS."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None  # None: the standard AWS credential chain
    secret_access_key: str | None = None
    sender: SmsSender = field(default_factory=SmsSender)
    audience_senders: Mapping[str, SmsSender] = field(default_factory=dict)
    policy: SmsPolicy = field(default_factory=SmsPolicy)
    timeout_s: float = 10.0
    max_workers: int = 8

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("sns timeout_s must be > 0")
        if self.max_workers < 1:
            raise ValueError("sns max_workers must be >= 1")

    def sender_for(self, audience: str) -> SmsSender:
        """The audience's sender settings, falling back to the section's per field."""
        own = self.audience_senders.get(audience)
        if own is None:
            return self.sender
        return SmsSender(
            sms_type=own.sms_type,
            sender_id=own.sender_id or self.sender.sender_id,
            origination_number=own.origination_number or self.sender.origination_number,
        )


class SnsClient:
    """One boto3 SNS client and the threads its blocking calls run in (shared, closed once)."""

    def __init__(self, settings: SnsSettings) -> None:
        self.settings = settings
        config = botocore.config.Config(
            region_name=settings.region,
            connect_timeout=settings.timeout_s,
            read_timeout=settings.timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=settings.max_workers,
        )
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
        )
        self._client: SNSClient = session.client(
            "sns", endpoint_url=settings.endpoint_url, config=config)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_workers, thread_name_prefix="tocsin-sns")
        self._closed = False

    async def publish(self, **kwargs: Any) -> str:
        """Run ``Publish`` in the pool; return the MessageId. Raises botocore errors."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self._client.publish, **kwargs)
        response = await loop.run_in_executor(self._pool, call)
        return str(response.get("MessageId", ""))

    async def close(self) -> None:
        """Wait for in-flight calls (bounded by the botocore timeouts), then close."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, True)
        self._client.close()


def classify_sns_error(exc: Exception, what: str) -> DeliveryError:
    """A DeliveryError (retryable or not) for an exception raised by a boto3 call."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        text = excerpt(str(error.get("Message", "")) or str(exc))  # never the whole answer
        meta = exc.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode", 0) or 0)
        headers = meta.get("HTTPHeaders", {}) or {}
        retry_after = _retry_after(headers.get("retry-after"))
        detail = f"SNS {code or status}: {text} ({what})"
        if code in _THROTTLING or status == 429:
            return DeliveryError(detail, retryable=True, retry_after_s=retry_after)
        if code in _TRANSIENT or status >= 500:
            return DeliveryError(detail, retryable=True, retry_after_s=retry_after)
        # InvalidParameter, NotFound, OptedOut, AuthorizationError, EndpointDisabled, ...
        return DeliveryError(detail, retryable=False)
    if isinstance(exc, botocore.exceptions.NoCredentialsError |
                  botocore.exceptions.PartialCredentialsError):
        return DeliveryError(f"SNS credentials missing or incomplete: {exc}", retryable=False)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return DeliveryError(f"SNS request invalid: {exc} ({what})", retryable=False)
    if isinstance(exc, botocore.exceptions.ConnectionError |
                  botocore.exceptions.HTTPClientError):
        return DeliveryError(f"cannot reach SNS: {exc}", retryable=True)
    if isinstance(exc, botocore.parsers.ResponseParserError):
        # A proxy or load balancer in front of SNS answered (e.g. an HTML 503 page).
        return DeliveryError(f"SNS answered an unparseable response ({what}): "
                             f"{excerpt(str(exc))}", retryable=True)
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return DeliveryError(f"SNS client error: {exc}", retryable=True)
    return DeliveryError(f"unexpected {type(exc).__name__} from SNS: {exc}", retryable=True)


def _retry_after(value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _attr(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


class SnsSmsChannel:
    """:class:`~router.channel.Channel` "sms": direct SMS through SNS."""

    name = "sms"

    def __init__(self, client: SnsClient, *, owns_client: bool = True) -> None:
        self._client = client
        self._owns_client = owns_client

    async def send(self, message: OutboundMessage) -> Receipt:
        """Publish one SMS to ``message.recipient`` (E.164); raise DeliveryError on failure."""
        settings = self._client.settings
        try:
            body, info = fit(message.message.text.strip(), settings.policy)
        except SmsOverflowError as exc:
            raise DeliveryError(f"SMS too long: {exc}", retryable=False) from exc
        if not body.strip():
            raise DeliveryError("SMS text is empty", retryable=False)
        sender = settings.sender_for(message.audience)
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "AWS.SNS.SMS.SMSType": _attr(sender.sms_type),
        }
        if sender.sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = _attr(sender.sender_id)
        if sender.origination_number:
            attributes["AWS.MM.SMS.OriginationNumber"] = _attr(sender.origination_number)
        try:
            message_id = await self._client.publish(
                PhoneNumber=message.recipient, Message=body, MessageAttributes=attributes)
        except Exception as exc:  # every boto3 failure, classified for the dispatcher
            error = classify_sns_error(exc, f"SMS to {mask_phone(message.recipient)}")
            raise error from exc
        return Receipt(provider_id=message_id,
                       detail=f"{info.segments} part(s), {info.encoding}",
                       segments=info.segments)

    async def close(self) -> None:
        """Close the shared client when this channel owns it."""
        if self._owns_client:
            await self._client.close()


def topic_subject(subject: str) -> str:
    """``subject`` made acceptable to SNS: ASCII, one line, at most 99 characters."""
    folded = unicodedata.normalize("NFKD", subject).encode("ascii", "ignore").decode("ascii")
    one_line = " ".join(folded.split())
    if len(one_line) > _SUBJECT_MAX:
        one_line = one_line[: _SUBJECT_MAX - 3].rstrip() + "..."
    return one_line or "Tocsin notification"


class SnsTopicChannel:
    """:class:`~router.channel.Channel` "topic": publish to an SNS topic ARN."""

    name = "topic"

    def __init__(self, client: SnsClient, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client

    async def send(self, message: OutboundMessage) -> Receipt:
        """Publish to the topic ``message.recipient``; raise DeliveryError on failure."""
        if not message.recipient.startswith("arn:"):
            raise DeliveryError(f"not a topic ARN: {message.recipient!r}", retryable=False)
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "severity": _attr(message.severity),
            "tocsin.idempotency_key": _attr(message.idempotency_key),
        }
        try:
            message_id = await self._client.publish(
                TopicArn=message.recipient,
                Message=message.message.text,
                Subject=topic_subject(message.message.subject),
                MessageAttributes=attributes,
            )
        except Exception as exc:  # every boto3 failure, classified for the dispatcher
            raise classify_sns_error(exc, f"topic {message.recipient}") from exc
        return Receipt(provider_id=message_id, detail="published to topic")

    async def close(self) -> None:
        """Close the shared client when this channel owns it."""
        if self._owns_client:
            await self._client.close()
