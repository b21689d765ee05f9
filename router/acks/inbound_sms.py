"""The SMS reply AWS End User Messaging publishes to an SNS topic (a Notification's
``Message``): ``originationNumber`` (who wrote), ``destinationNumber`` (our number),
``messageKeyword``, ``messageBody``, ``inboundMessageId``, ``previousPublishedMessageId``.

Parsed leniently (unknown fields ignored); a missing number, body or id is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from router.errors import SnsMessageError

__all__ = ["InboundSms", "parse_inbound_sms"]


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One SMS reply, as published (numbers not normalised yet)."""

    origination_number: str
    destination_number: str
    body: str
    inbound_message_id: str
    keyword: str | None = None  # the registered keyword AWS matched, if any
    previous_published_message_id: str | None = None  # the message it answers, if known


def _text(data: dict[str, object], key: str, *, required: bool) -> str | None:
    value = data.get(key)
    if isinstance(value, str) and (value or not required):
        return value
    if required:
        raise SnsMessageError(f"the inbound SMS has no {key}", reason="bad_sms")
    return None


def parse_inbound_sms(message: str) -> InboundSms:
    """The SMS of a Notification's ``Message``; SnsMessageError (``bad_sms``) if it is not one."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise SnsMessageError("the notification's Message is not an inbound SMS (not JSON)",
                              reason="bad_sms") from None
    if not isinstance(data, dict):
        raise SnsMessageError("the notification's Message is not an inbound SMS object",
                              reason="bad_sms")
    body = data.get("messageBody")
    if not isinstance(body, str):
        raise SnsMessageError("the inbound SMS has no messageBody", reason="bad_sms")
    return InboundSms(
        origination_number=_text(data, "originationNumber", required=True) or "",
        destination_number=_text(data, "destinationNumber", required=False) or "",
        body=body,
        inbound_message_id=_text(data, "inboundMessageId", required=True) or "",
        keyword=_text(data, "messageKeyword", required=False),
        previous_published_message_id=_text(data, "previousPublishedMessageId",
                                            required=False),
    )
