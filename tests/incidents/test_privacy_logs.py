"""No contact's address or name appears in the logs: an audience loaded, an incident
planned (one contact unreachable on a channel), sends that succeed, retry, fail and
raise — checked on the events as the code emits them (structlog capture, before any
processor) and on the lines as rendered (the service's logging configuration)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from router.clock import FakeClock
from router.errors import DeliveryError
from router.logging import configure_logging
from router.store import Store
from router.workers.dispatcher import Dispatcher
from router.workers.retry import RetryPolicy
from tests.dispatch.channels import ScriptedChannel
from tests.incidents.harness import T_MON_10, Harness, load, make_alert

PEOPLE = {
    "alice": ("Alice Martin", "alice.martin@example.com", "+33612345678"),
    "bob": ("Bob Durand", "bob.durand@example.org", "+33698765432"),
    "carol": ("Carol Petit", "carol.petit@example.net", None),  # no phone: unreachable by SMS
}
RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  customers:
    contacts:
""" + "".join(
    f"      - {{id: {cid}, name: {name}, email: {email}"
    + (f", phone: '{phone}'" if phone else "") + "}\n"
    for cid, (name, email, phone) in PEOPLE.items()) + """
templates:
  default:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "Dear customer"}
    sms:
      en: {text: "{{ alert.labels.alertname }}"}
route:
  audiences: [customers]
  template: default
  group_wait: 0s
  channels: {default: [email, sms]}
"""


def personal_data() -> list[str]:
    """Every name, name part, address and phone of the audience (and their digits)."""
    found: list[str] = []
    for name, email, phone in PEOPLE.values():
        found += [name, *name.split(), email, email.split("@")[0]]
        if phone:
            found += [phone, phone[1:]]
    return found


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    """The service's logging configuration, writing JSON lines to a buffer."""
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    yield buffer
    structlog.reset_defaults()


async def provoke(store: Store, tmp_path: Path) -> None:
    """Plan one incident for the audience, then send: e-mail to alice fails for good
    with the address in the provider's answer, bob's is retried, one SMS raises an
    unexpected error naming the number, the rest is sent."""
    clock = FakeClock(T_MON_10)
    h = Harness(store, load(tmp_path, RULES), clock)
    await h.receive(make_alert("PaymentsDown", starts_at=T_MON_10))
    planned = await h.tick(1)
    assert {d.channel for d in planned} == {"email", "sms"}
    email = ScriptedChannel(name="email", script=[
        DeliveryError("550 5.1.1 <alice.martin@example.com>: mailbox unavailable",
                      retryable=False),
        DeliveryError("451 bob.durand@example.org greylisted", retryable=True)])
    sms = ScriptedChannel(name="sms", script=[
        RuntimeError("provider rejected +33612345678")])
    dispatcher = Dispatcher(store, {"email": email, "sms": sms}, clock=clock,
                            policy=RetryPolicy(initial_s=1, max_s=30), concurrency=1,
                            lease_s=60, poll_interval_s=0.01)
    await dispatcher.dispatch_once()
    clock.advance(120)
    await dispatcher.dispatch_once()


async def test_raw_log_events_carry_no_personal_data(store: Store, tmp_path: Path) -> None:
    """What the code passes to the logger is already masked (no reliance on rendering)."""
    with capture_logs() as events:
        await provoke(store, tmp_path)
    kinds = {e["event"] for e in events}
    assert {"incident.contact_unreachable", "delivery.sent", "delivery.failed",
            "delivery.retry", "dispatch.unexpected_error"} <= kinds, kinds
    text = repr(events)
    for value in personal_data():
        assert value not in text, value
    failed = next(e for e in events if e["event"] == "delivery.failed")
    assert failed["recipient"] == "a***@e***.com" and "a***@e***.com" in failed["error"]


async def test_rendered_log_lines_carry_no_personal_data(
    store: Store, tmp_path: Path, rendered: io.StringIO,
) -> None:
    """The JSON lines an operator reads, tracebacks included, hold no address; the
    contact ids (not personal data in themselves) are what the lines name."""
    await provoke(store, tmp_path)
    text = rendered.getvalue()
    assert "delivery.failed" in text and "dispatch.unexpected_error" in text
    for value in (v for v in personal_data() if "@" in v or v.startswith("+")):
        assert value not in text, value
    assert '"contact_id": "carol"' in text
