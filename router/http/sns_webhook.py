"""``POST /webhook/sns``: SMS replies (and subscription messages) that SNS posts.

AWS End User Messaging two-way SMS publishes each reply to an SNS topic; the topic's
HTTPS subscription posts it here (header ``x-amz-sns-message-type``, a JSON body sent as
``text/plain``). Every message is checked before anything happens, cheapest first:

1. parsed (:mod:`router.acks.sns_message`), its ``TopicArn`` in ``sns.inbound.topic_arns``,
   its ``Timestamp`` inside ``sns.inbound.replay_window_s`` (and not more than
   ``max_clock_skew_s`` ahead);
2. its signature verified with the certificate at ``SigningCertURL``, which must match
   ``sns.inbound.cert_url_pattern`` (fetched once per URL: :mod:`adapters.sns_inbound`).

Then: a ``SubscriptionConfirmation`` is confirmed by a GET on its ``SubscribeURL`` (only
when it matches ``subscribe_url_pattern``); an ``UnsubscribeConfirmation`` is logged; a
``Notification`` is an inbound SMS whose ``MessageId`` and ``inboundMessageId`` are
remembered in the store (a duplicate answers 200 and does nothing: SNS retries, AWS may
publish twice) and whose text :func:`router.acks.sms_reply.answer_sms` acts on.

A refusal is a 4xx JSON error naming the ``reason`` (counted in
``tocsin_sns_inbound_total{type,result}``), and nothing is acknowledged; what may work
later (certificate server or store unavailable, confirmation GET failing) is a 503, so
that SNS tries again, and the ids are forgotten so the retry acts.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Final

from aiohttp import web

from router.acks.contract import Acknowledger
from router.acks.inbound_sms import InboundSms, parse_inbound_sms
from router.acks.sms_reply import answer_sms
from router.acks.sns_message import SnsMessage, parse_sns_message, verify_signature
from router.config import SnsInboundConfig
from router.errors import SnsMessageError, StoreError
from router.http.state import ACKNOWLEDGER, CLOCK, CONFIG, SNS_INBOUND, STORE
from router.logging import get_logger
from router.masking import mask_phone
from router.metrics import SMS_REPLIES, SNS_INBOUND_MESSAGES
from router.phones import normalise_phone
from router.store import Store

__all__ = ["MAX_BODY_BYTES", "handle_sns"]

#: Largest body accepted: an SNS message is at most 256 KiB, plus its JSON envelope.
MAX_BODY_BYTES: Final = 320 * 1024
_TYPES: Final = frozenset({"Notification", "SubscriptionConfirmation",
                           "UnsubscribeConfirmation"})
_log = get_logger("router.http.sns")


def _refuse(kind: str, reason: str, status: int, error: str) -> web.Response:
    SNS_INBOUND_MESSAGES.labels(type=kind, result=reason).inc()
    _log.warning("sns message refused", type=kind, reason=reason, status=status, error=error)
    return web.json_response({"status": "error", "error": error, "reason": reason},
                             status=status)


def _ok(kind: str, result: str, **extra: object) -> web.Response:
    SNS_INBOUND_MESSAGES.labels(type=kind, result=result).inc()
    return web.json_response({"status": "ok", "result": result, **extra})


async def _read_body(request: web.Request, timeout_s: float) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise SnsMessageError(f"the body is over {MAX_BODY_BYTES} bytes", reason="too_large",
                              status=413)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise SnsMessageError(f"the body is over {MAX_BODY_BYTES} bytes",
                                          reason="too_large", status=413)
                chunks.append(chunk)
    except TimeoutError:
        raise SnsMessageError(f"the body was not received within {timeout_s:g} s",
                              reason="body_timeout", status=408) from None
    return b"".join(chunks)


def _check(message: SnsMessage, inbound: SnsInboundConfig, now: datetime) -> None:
    """Topic and replay window: what needs no certificate."""
    if message.topic_arn not in inbound.topic_arns:
        raise SnsMessageError(f"TopicArn {message.topic_arn[:200]!r} is not in "
                              "sns.inbound.topic_arns", reason="wrong_topic", status=403)
    age_s = (now - message.timestamp).total_seconds()
    if age_s > inbound.replay_window_s:
        raise SnsMessageError(f"the message is {age_s:.0f} s old, over "
                              f"sns.inbound.replay_window_s ({inbound.replay_window_s:g})",
                              reason="stale")
    if -age_s > inbound.max_clock_skew_s:
        raise SnsMessageError(f"the message is dated {-age_s:.0f} s ahead, over "
                              f"sns.inbound.max_clock_skew_s ({inbound.max_clock_skew_s:g})",
                              reason="stale")


async def handle_sns(request: web.Request) -> web.Response:
    """Verify an SNS message, then confirm, log, or act on the SMS reply it carries."""
    sns = request.app[CONFIG].sns
    inbound = sns.inbound if sns is not None else None
    header_type = request.headers.get("x-amz-sns-message-type")
    kind = header_type if header_type in _TYPES else "unknown"
    client = request.app.get(SNS_INBOUND)
    if inbound is None or not inbound.enabled or client is None:
        return _refuse(kind, "disabled", 404, "SMS replies through SNS are not enabled "
                       "(sns.inbound.enabled)")
    now = request.app[CLOCK].now()
    try:
        body = await _read_body(request, request.app[CONFIG].webhook.body_timeout_s)
        message = parse_sns_message(body, header_type=header_type)
        kind = message.type
        _check(message, inbound, now)
        certificate = await client.certificate(message.signing_cert_url)
        verify_signature(message, certificate, now)
        if message.type == "SubscriptionConfirmation":
            assert message.subscribe_url is not None  # a signed key of confirmations
            await client.confirm_subscription(message.subscribe_url)
            _log.info("sns subscription confirmed", topic=message.topic_arn)
            return _ok(kind, "confirmed")
        if message.type == "UnsubscribeConfirmation":
            _log.warning("sns subscription ended: SMS replies of this topic no longer "
                         "arrive", topic=message.topic_arn)
            return _ok(kind, "unsubscribed")
        return await _notification(request, message, inbound, now)
    except SnsMessageError as exc:
        return _refuse(kind, exc.reason, exc.status, str(exc))
    except StoreError as exc:
        _log.warning("sns message not handled: store unavailable", error=str(exc))
        SNS_INBOUND_MESSAGES.labels(type=kind, result="unavailable").inc()
        return web.json_response({"status": "error", "reason": "unavailable",
                                  "error": "the state store is unavailable; retry"},
                                 status=503, headers={"Retry-After": "5"})


async def _notification(request: web.Request, message: SnsMessage, inbound: SnsInboundConfig,
                        now: datetime) -> web.Response:
    """An inbound SMS: deduplicated, then answered."""
    acks = request.app.get(ACKNOWLEDGER)
    if acks is None:
        raise SnsMessageError("acknowledgements are not running in this process",
                              reason="acks_unavailable", status=503)
    store = request.app[STORE]
    forget_before = now - timedelta(seconds=inbound.dedup_keep_s)
    if not await store.remember_inbound("sns", message.message_id, now,
                                        forget_before=forget_before):
        return _ok(message.type, "duplicate")
    sms = parse_inbound_sms(message.message)  # refused: the MessageId stays remembered
    remembered = [("sns", message.message_id)]
    try:
        if not await store.remember_inbound("sms", sms.inbound_message_id, now,
                                            forget_before=forget_before):
            return _ok(message.type, "duplicate")
        remembered.append(("sms", sms.inbound_message_id))
        return await _answer(store, acks, sms, inbound, now)
    except BaseException:  # re-raised: only the ids are forgotten, so that a retry acts
        await _forget(store, remembered)
        raise


async def _answer(store: Store, acks: Acknowledger, sms: InboundSms, inbound: SnsInboundConfig,
                  now: datetime) -> web.Response:
    """Act on a new SMS reply; log and count its outcome."""
    try:
        phone = normalise_phone(sms.origination_number)
    except ValueError:
        SMS_REPLIES.labels(outcome="unknown_number").inc()
        _log.info("sms reply from an unusable number ignored",
                  phone=mask_phone(sms.origination_number))
        return _ok("Notification", "accepted", outcome="unknown_number", incidents=[])

    async def first_help(number: str, at: datetime) -> bool:
        """True once per phone and UTC day: the help text is not sent in a loop."""
        digest = hashlib.sha256(number.encode("utf-8")).hexdigest()[:32]
        return await store.remember_inbound("sms_help", f"{digest}:{at.date()}", at)

    result = await answer_sms(acks, phone, sms.body, now, keyword=sms.keyword,
                              confirm=inbound.confirm_replies, first_help=first_help)
    SMS_REPLIES.labels(outcome=result.outcome).inc()
    if result.outcome == "opted_out":  # that phone gets no SMS any more: an on-call gap
        _log.warning("sms opt-out recorded: the carrier will not deliver SMS to this phone",
                     phone=mask_phone(phone), contacts=list(result.contact_ids))
    else:
        _log.info("sms reply", phone=mask_phone(phone), outcome=result.outcome,
                  incidents=list(result.incident_ids), answered=result.answered is not None)
    return _ok("Notification", "accepted", outcome=result.outcome,
               incidents=list(result.incident_ids))


async def _forget(store: Store, remembered: list[tuple[str, str]]) -> None:
    """Forget the ids of a message whose handling failed (the retry must act)."""
    for kind, message_id in remembered:
        try:
            await store.forget_inbound(kind, message_id)
        except StoreError as exc:
            _log.warning("inbound id not forgotten: a retry of it will be ignored",
                         kind=kind, error=str(exc))
