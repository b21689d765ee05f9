"""What `tocsin rules test` shows is byte for byte what the running service queues.

The service side is the real pipeline in-process: Alertmanager webhooks over HTTP into
the app of router/app.py with a real SQLite store, then the intake processor and the
scheduler driven by a FakeClock in 5-second ticks (as their loops would wake), every
delivery due marked sent at each tick (a dispatcher that sends at once). The
rule-test side is a rule test file of the shipped rules/ run by the runner
(`case_deliveries`, what `run_case` checks) and `explain_alert` (`--labels`). Both are
compared as (recipient, channel, subject, text) per phase of one incident life; the
negative checks change the template context on one side only and expect a difference.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from router.app import create_app
from router.authoring.explain import explain_alert
from router.authoring.rehearsal import RULES_TEST_META
from router.authoring.testfile import load_test_file
from router.authoring.testrun import case_deliveries
from router.clock import FakeClock
from router.config import ServiceConfig
from router.http import ServiceState
from router.models import (
    Alert,
    Contact,
    Delivery,
    Phase,
    Receipt,
    RenderedMessage,
    RouteDecision,
)
from router.rules import RuleSet, load_rules
from router.store import SqliteStore
from router.workers.intake import IntakeProcessor
from router.workers.scheduler import Scheduler

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
T0 = datetime(2024, 5, 2, 14, 0, tzinfo=UTC)

BILLING_1 = {"labels": {"alertname": "BillingDown", "service": "billing", "severity": "page",
                        "instance": "pay-1"},
             "annotations": {"summary": "Les paiements échouent", "eta": "30m"}}
BILLING_2 = {"labels": {**BILLING_1["labels"], "instance": "pay-2"},
             "annotations": BILLING_1["annotations"]}
OUTAGE = {"labels": {"alertname": "CheckoutDown", "audience": "customers", "crisis": "outage"},
          "annotations": {"service_name": "Espace client", "eta": "2024-05-02T16:00:00Z"}}
DISK = {"labels": {"alertname": "DiskFull", "instance": "db-9"},
        "annotations": {"summary": "95 %"}}

#: An incident life: (offset, alerts received then as firing, alerts received resolved).
Life = Sequence[tuple[timedelta, Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]]
LIFE: Life = (
    (timedelta(0), (BILLING_1, OUTAGE, DISK), ()),
    (timedelta(minutes=10), (BILLING_2,), ()),
    (timedelta(minutes=30), (), ()),  # the billing eta passes: a follow-up
    (timedelta(minutes=40), (), (BILLING_1, BILLING_2, OUTAGE, DISK)),
)
#: The last window: what the resolution causes (the rules' group_interval is 1m).
SETTLE = timedelta(minutes=1)

TEST_FILE = """\
rules: ..
cases:
  - name: the life the service runs
    alerts:
      - {billing_1}
      - {outage}
      - {disk}
    at: "2024-05-02T14:00:00Z"
    steps:
      - at: 0s
      - at: 10m
        alerts: [{billing_2}]
      - at: 30m
      - at: 40m
        resolve: [0, 1, 2, 3]
"""

Message = tuple[str, str, str, str]  # recipient, channel, subject, text


def _message(d: Delivery) -> Message:
    return (d.recipient, d.channel, d.message.subject, d.message.text)


def _runner(rules: RuleSet, tmp_path: Path) -> list[list[Message]]:
    """The messages of each step as the rule-test runner plans them."""
    folder = tmp_path / "tests"
    folder.mkdir(exist_ok=True)
    path = folder / "life.yaml"

    def flow(alert: Mapping[str, Any]) -> str:
        return json.dumps({"labels": alert["labels"], "annotations": alert["annotations"]},
                          ensure_ascii=False)

    path.write_text(TEST_FILE.format(billing_1=flow(BILLING_1), billing_2=flow(BILLING_2),
                                     outage=flow(OUTAGE), disk=flow(DISK)), encoding="utf-8")
    tf, problems = load_test_file(path)
    assert tf is not None, problems
    return [sorted(_message(d) for d in window) for window in case_deliveries(tf, 0, rules)]


def _payload(alerts: Sequence[Mapping[str, Any]], status: str, at: datetime) -> bytes:
    """An Alertmanager webhook body (version 4)."""
    starts = {id(BILLING_2): T0 + timedelta(minutes=10)}
    items = [{"status": status, "labels": a["labels"], "annotations": a["annotations"],
              "startsAt": starts.get(id(a), T0).isoformat(),
              "endsAt": at.isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
              "generatorURL": ""} for a in alerts]
    return json.dumps({"version": "4", "status": status,
                       "receiver": RULES_TEST_META["receiver"], "alerts": items}).encode()


async def _service(rules: RuleSet, tmp_path: Path, life: Life = LIFE) -> list[list[Message]]:
    """The outbox rows the service writes in each step's window."""
    clock = FakeClock(T0)
    store = SqliteStore(str(tmp_path / "service.db"))
    await store.start()
    config = ServiceConfig.model_validate({"state_url": f"sqlite:///{tmp_path / 'x.db'}"})
    app = create_app(config, rules=rules, store=store, state=ServiceState(), clock=clock,
                     run_workers=False)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    processor = IntakeProcessor(store, lambda: rules, clock=clock, deadline_s=86400)
    scheduler = Scheduler(store, lambda: rules, clock=clock, deadline_s=86400)
    try:
        end = T0 + life[-1][0] + SETTLE
        steps = {T0 + offset: (firing, resolved) for offset, firing, resolved in life}
        while clock.now() <= end:
            firing, resolved = steps.get(clock.now(), ((), ()))
            for alerts, status in ((firing, "firing"), (resolved, "resolved")):
                if alerts:
                    answer = await client.post(
                        "/webhook/alertmanager", data=_payload(alerts, status, clock.now()),
                        headers={"Content-Type": "application/json"})
                    assert answer.status == 200, await answer.text()
            while await processor.process_once():
                pass
            while await scheduler.flush_due():
                pass
            # A dispatcher that sends at once (as the rule test assumes): a first notice
            # is out before the incident resolves.
            while due := await store.claim_due(clock.now(), 1000, 60):
                for delivery in due:
                    await store.mark_sent(delivery.id, clock.now(), Receipt(detail="test"))
            clock.advance(5)
        rows = await store.list_deliveries(limit=10_000)
    finally:
        await client.close()
        await store.close()
    bounds = [T0 + offset for offset, _f, _r in life] + [end + timedelta(seconds=1)]
    return [sorted(_message(d) for d in rows if bounds[i] <= d.created_at < bounds[i + 1])
            for i in range(len(life))]


def _per_alert_context(rules: RuleSet) -> Callable[..., RenderedMessage]:
    """A render that gives templates the old per-alert incident (`single_alert_view`)."""
    original = type(rules).render

    def render(decision: RouteDecision, alert: Alert, contact: Contact, channel: str,
               phase: Phase, meta: Mapping[str, str], **_context: Any) -> RenderedMessage:
        return original(rules, decision, alert, contact, channel, phase, meta)

    return render


@contextmanager
def _rendering_changed(rules: RuleSet) -> Iterator[None]:
    """Change the template context of this rule set instance only."""
    rules.render = _per_alert_context(rules)  # type: ignore[method-assign]
    try:
        yield
    finally:
        del rules.render


async def test_rule_test_messages_equal_the_service_outbox(tmp_path: Path) -> None:
    """For one incident life of the shipped rules (first notices by SMS, e-mail and push
    in two languages, an update, a follow-up, the resolved notices), the rule-test
    runner plans exactly the outbox rows the service writes, byte for byte.

    Reproducer: the per-alert planner rendered every template with a one-alert stand-in
    incident (its id, count, follow-up number), so the rule test and the service differed.
    """
    runner = await asyncio.to_thread(_runner, load_rules([RULES]), tmp_path)
    service = await _service(load_rules([RULES]), tmp_path)
    assert runner == service
    first, update, follow_up, resolved = service
    assert {(r, c) for r, c, _s, _t in first} >= {
        ("+33612345678", "sms"), ("astreinte@example.fr", "email"), ("astreinte-fr", "push")}
    assert len(first) >= 6 and update and follow_up and len(resolved) >= 6
    assert any("pay-1, pay-2" in subject for _r, _c, subject, _t in update)
    assert any("TOUJOURS EN COURS" in subject for _r, _c, subject, _t in follow_up)


async def test_explain_shows_the_first_notice_the_service_sends(tmp_path: Path) -> None:
    """`tocsin rules test --labels` (explain) shows, per recipient and channel, the
    first notice the service queues for that alert, byte for byte."""
    rules = load_rules([RULES])
    doc = await asyncio.to_thread(explain_alert, rules, BILLING_1["labels"],
                                  BILLING_1["annotations"], phases=("firing",), now=T0)
    shown = sorted(
        (ch["address"], ch["channel"], ch["messages"]["firing"]["subject"],
         ch["messages"]["firing"]["text"])
        for route in doc["matched_routes"] for rec in route["recipients"]
        for ch in rec["channels"] if "firing" in ch.get("messages", {}))
    [service] = await _service(load_rules([RULES]), tmp_path,
                               ((timedelta(0), (BILLING_1,), ()),))
    assert shown == service
    assert len(shown) == 3  # SMS, e-mail and push


async def test_equality_fails_when_only_the_service_renders_differently(
        tmp_path: Path) -> None:
    """Negative check: the service alone rendering with another template context makes
    the comparison fail (the test does compare what each side renders)."""
    runner = await asyncio.to_thread(_runner, load_rules([RULES]), tmp_path)
    service_rules = load_rules([RULES])
    with _rendering_changed(service_rules):
        service = await _service(service_rules, tmp_path)
    assert runner != service
    assert [len(w) for w in runner] == [len(w) for w in service]  # same rows, other texts


async def test_equality_fails_when_only_the_rule_test_renders_differently(
        tmp_path: Path) -> None:
    """Negative check: the rule-test runner alone rendering with another template
    context makes the comparison fail."""
    runner_rules = load_rules([RULES])
    with _rendering_changed(runner_rules):
        runner = await asyncio.to_thread(_runner, runner_rules, tmp_path)
    service = await _service(load_rules([RULES]), tmp_path)
    assert runner != service
    assert [len(w) for w in runner] == [len(w) for w in service]


def test_the_life_is_written_as_the_runner_reads_it() -> None:
    """The rule test file above and LIFE describe the same alerts at the same times."""
    assert textwrap.dedent(TEST_FILE).count("at: ") == len(LIFE) + 1  # case at + steps
