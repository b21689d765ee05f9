"""Answering one SMS reply: the decision of :mod:`router.acks.replies`, carried out
through the :class:`~router.acks.contract.Acknowledger`.

``POST /webhook/sns`` calls :func:`answer_sms` once the SNS message is verified and new.
Nothing here does I/O of its own: it awaits the Acknowledger (durable before it
returns) and ``first_help`` (whether this phone may get the help text now: once a day).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from router.acks.contract import AckBy, Acknowledger
from router.acks.replies import (
    acknowledged_text,
    already_text,
    choices_text,
    decide,
    help_text,
    parse_reply,
    reply_language,
)

__all__ = ["ReplyOutcome", "ReplyResult", "answer_sms"]

#: What a reply did (the ``outcome`` label of ``tocsin_sms_replies_total``).
ReplyOutcome = Literal["acknowledged", "already", "closed", "choices", "opted_out",
                       "not_pending", "not_understood"]


@dataclass(frozen=True, slots=True)
class ReplyResult:
    """What :func:`answer_sms` did: the outcome, the incidents acknowledged, the answer sent."""

    outcome: ReplyOutcome
    incident_ids: tuple[str, ...] = ()
    answered: str | None = None  # the SMS text sent back, if any
    contact_ids: tuple[str, ...] = ()  # opt-out: the paged contacts with that phone


async def answer_sms(acks: Acknowledger, phone: str, text: str, now: datetime, *,
                     keyword: str | None = None, confirm: bool = True,
                     first_help: Callable[[str, datetime], Awaitable[bool]] | None = None,
                     ) -> ReplyResult:
    """Do what the reply ``text`` from ``phone`` (E.164) asks.

    ``confirm``: tell the person their answer was taken (or who took it first).
    ``first_help(phone, now)``: True when a reply not understood may be answered with
    the help text now (None: never answered).
    """
    reply = parse_reply(text, keyword=keyword)
    if reply.kind == "opt_out":
        contacts = await acks.record_opt_out(phone, reply.keyword or "STOP", now)
        return ReplyResult("opted_out", contact_ids=tuple(contacts))  # no SMS: they opted out
    pending = await acks.pending_for("sms", phone, now)
    decision = decide(reply, pending)
    language = reply_language(reply, phone)
    if decision.action == "not_pending":
        return ReplyResult("not_pending")
    if decision.action == "not_understood":
        if decision.choices and first_help is not None and await first_help(phone, now):
            answer = help_text(decision.choices, language)
            await acks.send_reply(phone, answer, now)
            return ReplyResult("not_understood", answered=answer)
        return ReplyResult("not_understood")
    if decision.action == "choose":
        answer = choices_text(decision.choices, language)
        await acks.send_reply(phone, answer, now)
        return ReplyResult("choices", answered=answer)
    acknowledged: list[str] = []
    answers: list[str] = []
    outcome: ReplyOutcome = "closed"
    for target in decision.targets:
        result = await acks.acknowledge(
            target.incident_id, by=AckBy(name=target.contact_name, contact_id=target.contact_id),
            channel="sms", at=now)
        if result.status == "acknowledged":
            acknowledged.append(target.incident_id)
            outcome = "acknowledged"
            answers.append(acknowledged_text(target, language))
        elif result.status == "already":
            if outcome != "acknowledged":
                outcome = "already"
            by = result.acknowledged_by.name if result.acknowledged_by else "?"
            answers.append(already_text(target, by, language))
    confirmation = " / ".join(answers) if confirm and answers else None
    if confirmation is not None:
        await acks.send_reply(phone, confirmation, now)
    return ReplyResult(outcome, incident_ids=tuple(acknowledged), answered=confirmation)
