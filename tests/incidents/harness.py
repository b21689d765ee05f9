"""A real SQLite store, the intake processor and the scheduler driven by a FakeClock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from router.clock import FakeClock
from router.fingerprint import fingerprint
from router.models import Alert, Delivery, IntakeRecord, Receipt
from router.rules import RuleSet, load_rules
from router.store import Store
from router.workers.intake import IntakeProcessor
from router.workers.scheduler import Scheduler

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  ops:
    contacts:
      - {id: alice, name: Alice, email: alice@example.com}
      - {id: bob, name: Bob, email: bob@example.com, timezone: Europe/Paris}
  customers:
    quiet_hours: nights
    contacts:
      - {id: carol, name: Carol, email: carol@example.com, timezone: Europe/Paris}
      - {id: dave, name: Dave, email: dave@example.com, timezone: Europe/Paris,
         quiet_hours: none}
quiet_hours:
  nights:
    - times: [{start_time: "22:00", end_time: "08:00"}]
    - weekdays: [saturday, sunday]
inhibit_rules:
  - source_matchers: ['alertname="ServiceDown"', 'severity="critical"']
    target_matchers: ['alertname="HighLatency"']
    equal: [service]
templates:
  default:
    email:
      en:
        subject: >-
          {{ phase }} {{ alert.labels.alertname }} {{ incident.count }}/{{ incident.total }}
        text: "{{ incident.instances | join(',') }} {{ incident.duration_s | duration }}"
route:
  audiences: [ops]
  template: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  severity: {label: severity, default: warning}
  channels: {default: [email]}
  routes:
    - matchers: ['audience="customers"']
      audiences: [customers]
      follow_up_after: 1h
      max_follow_ups: 2
    - matchers: ['alertname="Muted"']
      mute_time_intervals: [always]
time_intervals:
  always:
    - times: [{start_time: "00:00", end_time: "24:00"}]
"""


def make_alert(name: str, *, status: str = "firing", starts_at: datetime,
               ends_at: datetime | None = None, annotations: Mapping[str, str] | None = None,
               **labels: str) -> Alert:
    all_labels = {"alertname": name, **labels}
    return Alert(labels=all_labels, annotations=dict(annotations or {}),
                 status="resolved" if status == "resolved" else "firing",
                 starts_at=starts_at, ends_at=ends_at, generator_url="",
                 fingerprint=fingerprint(all_labels))


@dataclass
class Harness:
    """Drive alerts through intake → incidents → scheduler → outbox with a fake clock.

    Nothing is sent by default: every delivery stays pending (a test reads it so), and a
    first notice still queued when the incident resolves is replaced by one ``summary``.
    With ``send`` every delivery due after a flush is marked sent, like a dispatcher
    that sends instantly (notices held by quiet hours stay pending until their hold
    ends): a later resolution is then a ``resolved`` notice.
    """

    store: Store
    rules: RuleSet
    clock: FakeClock
    send: bool = False
    processor: IntakeProcessor = field(init=False)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        self.processor = IntakeProcessor(self.store, lambda: self.rules, clock=self.clock,
                                         deadline_s=3600)
        self.scheduler = Scheduler(self.store, lambda: self.rules, clock=self.clock,
                                   deadline_s=3600)

    async def receive(self, *alerts: Alert, sender: str = "http://am-1:9093") -> None:
        await self.store.append_intake([
            IntakeRecord(source="alertmanager", received_at=self.clock.now(), alert=a,
                         meta={"externalURL": sender}) for a in alerts])
        while await self.processor.process_once():
            pass

    async def tick(self, seconds: float = 0) -> list[Delivery]:
        """Advance the clock, fire due timers; return the deliveries planned by them."""
        before = {d.id for d in await self.deliveries()}
        self.clock.advance(seconds)
        while await self.scheduler.flush_due():
            await self.send_due()
        await self.send_due()
        return [d for d in await self.deliveries() if d.id not in before]

    async def send_due(self) -> None:
        """Mark the deliveries due now sent (``send`` only), in the claim order."""
        while self.send and (batch := await self.store.claim_due(self.clock.now(), 1000, 60)):
            for delivery in batch:
                await self.store.mark_sent(delivery.id, self.clock.now(),
                                           Receipt(detail="harness"))

    async def deliveries(self) -> list[Delivery]:
        rows = await self.store.list_deliveries(limit=1000)
        return sorted(rows, key=lambda d: d.id)


def load(tmp: Path, text: str = RULES) -> RuleSet:
    path = tmp / "rules.yaml"
    path.write_text(text)
    return load_rules([path])


T_MON_10 = datetime.fromisoformat("2024-05-06T10:00:00+00:00")  # Monday 12:00 Paris
T_SUN_0030 = datetime.fromisoformat("2024-05-05T00:30:00+00:00")  # Sunday 02:30 Paris
