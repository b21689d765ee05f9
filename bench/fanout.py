"""Fan-out: one incident planned for a 100,000-recipient audience, then sent.

Part 1, planning (in-process, SQLite outbox with ``synchronous=FULL``): an audience of
``--recipients`` generated contacts (e-mail, phone, four locales and time zones), one
alert received, the group timer fired; measured: planning time (the scheduler's flush:
plan + commit of every delivery), deliveries planned per second, and the longest gap of
the event loop meanwhile (a 5 ms ticker on the loop: what ``/healthz`` would see). Two
templates: ``shared`` (reads the locale and time zone only, as most broadcast templates)
and ``personal`` (greets ``recipient.name``: no two messages alike).

Part 2, sending (``--emails`` deliveries, a local aiosmtpd sink that accepts every
message): the reference is a bare aiosmtplib sender with ``--connections`` connections
to the same sink; Tocsin is the outbox → :class:`Dispatcher` → SMTP adapter with the
same connection count, in the same run, interleaved, medians compared. Then e-mail and
SMS together (SMS to a moto SNS server with the SMS lane limited to ``--sms-rate``/s):
e-mail's rate with SMS on vs alone.

Run: ``python bench/fanout.py`` (``--recipients 100000 --emails 2000 --rounds 3``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import free_port  # noqa: E402
from router.clock import FakeClock  # noqa: E402
from router.fingerprint import fingerprint  # noqa: E402
from router.gctune import tune_gc  # noqa: E402
from router.logging import configure_logging  # noqa: E402
from router.models import Alert, Contact, IntakeRecord  # noqa: E402
from router.rules import RuleSet, load_rules  # noqa: E402
from router.rules.ruleset import Audience  # noqa: E402
from router.store import SqliteStore  # noqa: E402
from router.workers.intake import IntakeProcessor  # noqa: E402
from router.workers.scheduler import Scheduler  # noqa: E402

T0 = datetime.fromisoformat("2024-05-06T10:00:00+00:00")
_LOCALES = (("en", "UTC"), ("fr", "Europe/Paris"), ("en-US", "America/New_York"),
            ("de", "Europe/Berlin"))

_RULES = """
defaults: {{locale: en, timezone: UTC}}
audiences:
  customers:
    contacts:
      - {{id: placeholder, name: P, email: p@example.com}}
templates:
  default:
    email:
      en:
        subject: >-
          [{{{{ severity }}}}] {{{{ alert.labels.alertname }}}} on
          {{{{ alert.labels.service }}}}
        text: |
          {greeting}
          {{{{ alert.annotations.summary }}}}
          Started {{{{ incident.started_at | date }}}}, {{{{ incident.count }}}} alert(s).
      fr:
        subject: >-
          [{{{{ severity }}}}] {{{{ alert.labels.alertname }}}} sur
          {{{{ alert.labels.service }}}}
        text: |
          {greeting_fr}
          {{{{ alert.annotations.summary }}}}
          Début {{{{ incident.started_at | date }}}}, {{{{ incident.count }}}} alerte(s).
    sms:
      en:
        text: >-
          {{{{ alert.labels.alertname }}}} {{{{ alert.labels.service }}}}
          {{{{ incident.started_at | date('%H:%M') }}}}
route:
  audiences: [customers]
  template: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  severity: {{label: severity, default: warning}}
  channels: {{default: [{channels}]}}
"""


def contacts(count: int) -> tuple[Contact, ...]:
    """``count`` generated customers, cycling over four locales and time zones."""
    out = []
    for i in range(count):
        locale, tz = _LOCALES[i % len(_LOCALES)]
        out.append(Contact(id=f"c{i:06d}", name=f"Customer {i}",
                           email=f"c{i:06d}@example.com", phone=f"+3361{i:07d}",
                           locale=locale, timezone=tz))
    return tuple(out)


def ruleset(tmp: Path, count: int, *, personal: bool, channels: str = "email") -> RuleSet:
    """The bench's rule set with its ``customers`` audience replaced by ``count``
    generated contacts (built in memory: contact files are another benchmark)."""
    greeting = "Hello {{ recipient.name }}," if personal else "Hello,"
    greeting_fr = "Bonjour {{ recipient.name }}," if personal else "Bonjour,"
    path = tmp / "rules.yaml"
    path.write_text(_RULES.format(greeting=greeting, greeting_fr=greeting_fr,
                                  channels=channels))
    rules = load_rules([path])
    rules.audiences = {"customers": Audience(name="customers", contacts=contacts(count))}
    return rules


def alert(name: str = "PaymentsDown", **labels: str) -> Alert:
    all_labels = {"alertname": name, "service": "payments", "severity": "critical", **labels}
    return Alert(labels=all_labels, annotations={"summary": "Card payments are failing"},
                 status="firing", starts_at=T0, ends_at=None, generator_url="",
                 fingerprint=fingerprint(all_labels))


class LoopGaps:
    """The longest interval between two ticks of a 5 ms ticker on the running loop."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.period_s = period_s
        self.longest_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period_s)
            now = time.perf_counter()
            self.longest_s = max(self.longest_s, now - last)
            last = now

    def __enter__(self) -> LoopGaps:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class PlanFigures:
    recipients: int
    deliveries: int
    seconds: float
    longest_gap_s: float

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


async def plan_once(count: int, *, personal: bool, channels: str = "email") -> PlanFigures:
    """Receive one alert for the ``count``-recipient audience and time its flush."""
    with tempfile.TemporaryDirectory() as tmp:
        rules = ruleset(Path(tmp), count, personal=personal, channels=channels)
        tune_gc()  # as the service does once its rules are loaded (router/gctune.py)
        store = SqliteStore(str(Path(tmp) / "state.db"))
        await store.start()
        try:
            clock = FakeClock(T0)
            processor = IntakeProcessor(store, lambda: rules, clock=clock, deadline_s=3600)
            scheduler = Scheduler(store, lambda: rules, clock=clock, deadline_s=3600)
            await store.append_intake([IntakeRecord(source="alertmanager", received_at=T0,
                                                    alert=alert(), meta={})])
            while await processor.process_once():
                pass
            clock.advance(31)
            with LoopGaps() as gaps:
                await asyncio.sleep(0.02)
                started = time.perf_counter()
                while await scheduler.flush_due():
                    pass
                seconds = time.perf_counter() - started
                await asyncio.sleep(0.02)
            planned = (await store.counts(clock.now()))["pending"]
            return PlanFigures(count, planned, seconds, gaps.longest_s)
        finally:
            await store.close()


async def _median(runs: int, make: Callable[[], Awaitable[Any]]) -> list[Any]:
    return [await make() for _ in range(runs)]


# --------------------------------------------------------------------------- sending


class _Sink:
    """A local aiosmtpd server that accepts every message and counts it."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.count += 1
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> _Sink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


async def _until(check: Callable[[], bool], timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.01)


async def bare_aiosmtplib(sink: _Sink, messages: int, connections: int) -> float:
    """Messages/s of ``connections`` aiosmtplib clients sending ``messages`` in turn."""
    from email.message import EmailMessage

    import aiosmtplib

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)
    start = sink.count

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=10)
        await client.connect()
        try:
            while not queue.empty():
                i = queue.get_nowait()
                msg = EmailMessage()
                msg["From"] = "tocsin@localhost"
                msg["To"] = f"c{i:06d}@example.com"
                msg["Subject"] = "[critical] PaymentsDown on payments"
                msg.set_content("Hello,\nCard payments are failing\n")
                await client.send_message(msg)
        finally:
            await client.quit()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    await _until(lambda: sink.count - start >= messages)
    return messages / (time.perf_counter() - began)


async def tocsin_send(sink: _Sink, messages: int, connections: int, *,
                      sms: tuple[str, float] | None = None) -> tuple[float, float]:
    """(e-mails/s, SMS/s) through the outbox, the dispatcher and the adapters: one
    incident's fan-out to ``messages`` recipients planned first, then timed from the
    dispatcher's start to the last e-mail at the sink. ``sms``: (moto URL, rate/s) to
    plan an SMS per recipient too, in its own lane."""
    from adapters.smtp import SmtpChannel, SmtpSettings
    from router.channel import Channel
    from router.workers.dispatcher import Dispatcher
    from router.workers.retry import RetryPolicy

    with tempfile.TemporaryDirectory() as tmp:
        channels_used = "email, sms" if sms is not None else "email"
        rules = ruleset(Path(tmp), messages, personal=False, channels=channels_used)
        store = SqliteStore(str(Path(tmp) / "state.db"))
        await store.start()
        clock = FakeClock(datetime.now(T0.tzinfo))
        channels: dict[str, Channel] = {"email": SmtpChannel(SmtpSettings(
            port=sink.port, pool_size=connections, timeout_s=10))}
        rates = {}
        if sms is not None:
            from adapters.sns import SnsClient, SnsSettings, SnsSmsChannel

            channels["sms"] = SnsSmsChannel(SnsClient(SnsSettings(
                region="us-east-1", endpoint_url=sms[0], access_key_id="testing",
                secret_access_key="testing", timeout_s=10)))
            rates["sms"] = sms[1]
        try:
            processor = IntakeProcessor(store, lambda: rules, clock=clock, deadline_s=3600)
            scheduler = Scheduler(store, lambda: rules, clock=clock, deadline_s=3600)
            await store.append_intake([IntakeRecord(source="alertmanager",
                                                    received_at=clock.now(),
                                                    alert=alert(), meta={})])
            while await processor.process_once():
                pass
            clock.advance(31)
            while await scheduler.flush_due():
                pass
            dispatcher = Dispatcher(store, channels, clock=clock, policy=RetryPolicy(),
                                    concurrency=connections, lease_s=600,
                                    send_timeout_s=30, poll_interval_s=0.05,
                                    rate_limits=rates)
            start = sink.count
            began = time.perf_counter()
            task = asyncio.create_task(dispatcher.run())
            await _until(lambda: sink.count - start >= messages)
            email_s = time.perf_counter() - began
            sent = (await store.counts(clock.now()))["pending"]
            sms_sent = messages * (2 if sms else 1) - sent - messages
            await dispatcher.stop()
            await task
            return messages / email_s, max(0, sms_sent) / email_s
        finally:
            for channel in channels.values():
                close = getattr(channel, "close", None)
                if close is not None:
                    await close()
            await store.close()


def _moto() -> tuple[Any, str]:
    import subprocess
    import urllib.request

    port = free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.2)


async def send_rounds(messages: int, connections: int, rounds: int, sms_rate: float,
                      moto_url: str) -> None:
    with _Sink() as sink:
        refs: list[float] = []
        ours: list[float] = []
        for round_no in range(1, rounds + 1):
            refs.append(await bare_aiosmtplib(sink, messages, connections))
            ours.append((await tocsin_send(sink, messages, connections))[0])
            print(f"round {round_no}: bare aiosmtplib {refs[-1]:.0f}/s, "
                  f"Tocsin {ours[-1]:.0f} e-mails/s ({ours[-1] / refs[-1]:.2f}x)")
        ref, tocsin = statistics.median(refs), statistics.median(ours)
        print(f"median e-mail: bare {ref:.0f}/s, Tocsin {tocsin:.0f}/s, "
              f"ratio {tocsin / ref:.2f} ({connections} connections)")
        email, sms = await tocsin_send(sink, messages, connections,
                                       sms=(moto_url, sms_rate))
        print(f"e-mail with SMS on (SMS lane limited to {sms_rate:g}/s): {email:.0f} "
              f"e-mails/s ({email / tocsin:.2f}x e-mail alone), SMS {sms:.1f}/s meanwhile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sms-rate", type=float, default=20.0)
    parser.add_argument("--skip-plan", action="store_true")
    parser.add_argument("--skip-send", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")
    if not args.skip_send:
        process, url = _moto()
        try:
            asyncio.run(send_rounds(args.emails, args.connections, args.rounds,
                                    args.sms_rate, url))
        finally:
            process.terminate()
            process.wait(timeout=10)
    if args.skip_plan:
        return
    for personal in (False, True):
        runs: list[PlanFigures] = asyncio.run(_median(
            args.rounds, functools.partial(plan_once, args.recipients, personal=personal)))
        for run in runs:
            print(f"{'personal' if personal else 'shared'}: {run.deliveries} planned in "
                  f"{run.seconds:.2f} s ({run.per_second:,.0f}/s), longest loop gap "
                  f"{run.longest_gap_s * 1000:.0f} ms")
        med = statistics.median(r.per_second for r in runs)
        gap = max(r.longest_gap_s for r in runs)
        print(f"median {'personal' if personal else 'shared'}: {med:,.0f} deliveries/s, "
              f"worst loop gap {gap * 1000:.0f} ms")


if __name__ == "__main__":
    main()
