"""A 5,000-contact fan-out through the real adapters: aiosmtpd for e-mail, moto for SMS.

Two incidents planned by the service's own intake processor and scheduler: a customer
broadcast by e-mail to 5,000 contacts, and an on-call page by e-mail and SMS to 40
people, with the SMS lane limited to 10/s. The page resolves at once, while its first
SMS still wait for the rate limit. Timestamps at the sinks show that

- e-mail is not slowed by the SMS rate: by the time moto has 20 SMS (2 s of SMS at
  least), the SMTP server already has far more e-mails than the SMS rate would allow;
- for each person, the resolved notice arrives after the first notice, on both channels;
  or, when none of their first notices had gone out nor was being sent at the
  resolution, one ``summary`` on each channel replaces both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.smtp import SmtpChannel, SmtpSettings
from adapters.sns import SnsClient, SnsSettings, SnsSmsChannel
from router.channel import Channel
from router.clock import FakeClock
from router.fingerprint import fingerprint
from router.models import Alert, Contact, IntakeRecord
from router.rules import load_rules
from router.rules.ruleset import Audience
from router.store import SqliteStore
from router.workers.dispatcher import Dispatcher
from router.workers.intake import IntakeProcessor
from router.workers.retry import RetryPolicy
from router.workers.scheduler import Scheduler
from tests.adapters.sns_services import REGION, MotoServer, moto_server
from tests.services.smtp import SmtpServer

pytestmark = pytest.mark.integration

CUSTOMERS = 5_000
ON_CALL = 40
SMS_RATE = 10.0

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  customers:
    contacts: [{id: placeholder, name: P, email: p@example.com}]
  oncall:
    contacts: [{id: placeholder, name: P, email: p@example.com}]
templates:
  default:
    email:
      en:
        subject: "{{ phase }} {{ alert.labels.alertname }}"
        text: "{{ alert.labels.alertname }} since {{ incident.started_at | date }}"
    sms:
      en:
        text: "{{ phase }} {{ alert.labels.alertname }}"
route:
  audiences: [customers]
  template: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  channels: {default: [email]}
  routes:
    - matchers: ['alertname="CardsDown"']
      audiences: [oncall]
      channels: {default: [email, sms]}
"""


def _alert(name: str, start: datetime, end: datetime | None = None) -> Alert:
    labels = {"alertname": name}
    return Alert(labels=labels, annotations={}, status="firing" if end is None else "resolved",
                 starts_at=start, ends_at=end, generator_url="",
                 fingerprint=fingerprint(labels))


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


async def _wait(check: object, what: str, timeout_s: float = 45.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_fan_out_keeps_lanes_apart_and_phases_in_order(
        tmp_path: Path, smtp: SmtpServer, moto: MotoServer) -> None:
    moto.reset()
    (tmp_path / "rules.yaml").write_text(RULES)
    rules = load_rules([tmp_path / "rules.yaml"])
    rules.audiences = {
        "customers": Audience("customers", tuple(
            Contact(id=f"c{i}", name=f"C{i}", email=f"c{i}@example.com")
            for i in range(CUSTOMERS))),
        "oncall": Audience("oncall", tuple(
            Contact(id=f"o{i}", name=f"O{i}", email=f"o{i}@example.com",
                    phone=f"+336120000{i:02d}") for i in range(ON_CALL))),
    }
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.start()
    clock = FakeClock(datetime.now(UTC))
    channels: dict[str, Channel] = {
        "email": SmtpChannel(SmtpSettings(port=smtp.port, pool_size=4, timeout_s=10)),
        "sms": SnsSmsChannel(SnsClient(SnsSettings(
            region=REGION, endpoint_url=moto.url, access_key_id="testing",
            secret_access_key="testing", timeout_s=10)))}
    processor = IntakeProcessor(store, lambda: rules, clock=clock, deadline_s=3600)
    scheduler = Scheduler(store, lambda: rules, clock=clock, deadline_s=3600)

    async def receive(*alerts: Alert) -> None:
        await store.append_intake([IntakeRecord(source="alertmanager",
                                                received_at=clock.now(), alert=a, meta={})
                                   for a in alerts])
        while await processor.process_once():
            pass
        while await scheduler.flush_due():
            pass

    dispatcher = Dispatcher(store, channels, clock=clock, policy=RetryPolicy(),
                            concurrency=4, lease_s=300, send_timeout_s=30,
                            poll_interval_s=0.05, rate_limits={"sms": SMS_RATE})
    task: asyncio.Task[None] | None = None
    try:
        start = clock.now()
        await receive(_alert("PaymentsDown", start), _alert("CardsDown", start))
        clock.advance(31)
        await receive()  # the group timers fire: both fan-outs planned
        task = asyncio.create_task(dispatcher.run())
        clock.advance(300)
        await receive(_alert("CardsDown", start, clock.now()))  # resolved at once

        # E-mail is not held back by the SMS rate (timestamps: counts at the sinks).
        await _wait(lambda: len(moto.sms()) >= 20, "20 SMS")
        emails_then = len(smtp.received)
        assert emails_then >= 200, (
            f"{emails_then} e-mails by the 20th SMS: e-mail waits behind the SMS rate")

        def told(received: dict[str, list[str]], keys: list[str]) -> bool:
            return all(received.get(k) in (["firing", "resolved"], ["summary"]) for k in keys)

        mails = [f"o{i}@example.com" for i in range(ON_CALL)]
        phones = [f"+336120000{i:02d}" for i in range(ON_CALL)]
        await _wait(lambda: len(smtp.received) >= CUSTOMERS + ON_CALL
                    and told(_mail_phases(smtp), mails), "every e-mail")
        await _wait(lambda: told(_sms_phases(moto), phones), "every SMS")
    finally:
        if task is not None:
            await dispatcher.stop()
            await task
        for channel in channels.values():
            await channel.close()
        await store.close()

    # For each person, the first notice before the resolved one, on both channels (or
    # one summary on both when neither first notice had gone out at the resolution).
    mail_phases = _mail_phases(smtp)
    sms_phases = _sms_phases(moto)
    assert len(mail_phases) == CUSTOMERS + ON_CALL
    assert all(mail_phases[f"c{i}@example.com"] == ["firing"] for i in range(CUSTOMERS))
    for i in range(ON_CALL):
        mail, sms = mail_phases[f"o{i}@example.com"], sms_phases[f"+336120000{i:02d}"]
        assert (mail, sms) in ((["firing", "resolved"], ["firing", "resolved"]),
                               (["summary"], ["summary"])), (mail, sms)


def _mail_phases(smtp: SmtpServer) -> dict[str, list[str]]:
    """Recipient → the phases of the e-mails it received, in order of arrival."""
    out: dict[str, list[str]] = {}
    for mail in list(smtp.received):
        for rcpt in mail.rcpt_tos:
            out.setdefault(rcpt, []).append(mail.subject.split()[0])
    return out


def _sms_phases(moto: MotoServer) -> dict[str, list[str]]:
    """Phone number → the phases of the SMS it received, in order of arrival."""
    out: dict[str, list[str]] = {}
    for sms in moto.sms():
        out.setdefault(sms["phone_number"], []).append(sms["message"].split()[0])
    return out
