"""Several Tocsin instances on one PostgreSQL, one SIGKILLed mid-way: what the SMTP server got.

The scenario shared by ``tests/integration/test_failover.py`` (a modest size) and
``bench/failover.py`` (the issue's size, figures printed): ``instances`` real
``tocsin serve`` processes share one PostgreSQL database and one Kafka consumer group
(tansu), and send e-mail to one aiosmtpd server. Alerts of ``incidents`` incidents are
sent half over HTTP (bodies spread round-robin over the instances; a body refused or
unanswered is sent to the next instance, as Alertmanager retries; the dead instance stays
in the rotation, as behind a load balancer that has not noticed yet) and half through a
Kafka topic of three partitions. In the middle of the firing alerts one instance is
SIGKILLed; once every first notice arrived, every alert is resolved the same way.

What it measures, from the outside: per incident, how many first (``firing``) and
``resolved`` notices the SMTP server received (0: lost, 2 or more: duplicated), whether
every accepted alert is in the shared intake and routed, and the **takeover time**: from
the SIGKILL until the work the dead instance held (its claimed intake rows and due
incidents, and deliveries leased at that moment) was finished by the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .http import request, wait_until
from .smtp import SmtpServer
from .tocsin import TocsinProcess

__all__ = ["FailoverResult", "FailoverRun", "run_failover"]

RULES = """\
defaults: {locale: en, timezone: UTC}
audiences:
  ops: {contacts: [{id: ops, name: Ops, email: ops@example.com}]}
templates:
  notice:
    email:
      en:
        subject: "{{ phase }} {{ incident.group_labels.incident }}"
        text: "{{ incident.count }} firing"
route:
  name: failover
  audiences: [ops]
  template: notice
  group_by: [incident]
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 24h
  channels: {default: [email]}
"""

STARTS_AT = "2026-12-01T10:00:00Z"
ENDS_AT = "2026-12-01T11:00:00Z"
TOPIC = "alerts"
#: Alerts per HTTP body.
HTTP_BATCH = 10


@dataclass
class FailoverResult:
    """What the SMTP server and the shared store saw."""

    incidents: int
    alerts: int
    accepted_http: int  # alerts answered 200 (each once, to one instance or the next)
    produced_kafka: int
    firing: Counter[str]  # incident -> first notices received
    resolved: Counter[str]  # incident -> resolved notices received
    unrouted: int  # accepted alerts missing from the intake, or not routed
    held_at_kill: dict[str, int]  # what the dead instance held: intake, incidents, deliveries
    takeover_s: float  # SIGKILL -> every item it held finished by another instance
    elapsed_s: float
    retried_bodies: int  # HTTP bodies sent again to another instance
    #: Duplicated notices that are one delivery sent twice (same Message-ID: the dead
    #: instance's send was accepted by the SMTP server, its "sent" never recorded), as
    #: opposed to two deliveries planned for one notice.
    resent: int = 0

    def lost(self) -> int:
        """First and resolved notices never received."""
        names = [f"inc{k:04d}" for k in range(self.incidents)]
        return sum(1 for n in names if self.firing[n] == 0) + sum(
            1 for n in names if self.resolved[n] == 0)

    def duplicated(self) -> int:
        """First and resolved notices received more than once (the extra copies)."""
        return sum(c - 1 for c in self.firing.values() if c > 1) + sum(
            c - 1 for c in self.resolved.values() if c > 1)


@dataclass
class FailoverRun:
    """The services a run uses (started by the caller) and its size."""

    workdir: Path
    pg_url: str
    kafka_bootstrap: str
    create_topic: Callable[[str, int], None]
    smtp: SmtpServer
    alerts: int = 300
    incidents: int = 30
    instances: int = 3
    lease_s: float = 3.0
    timeout_s: float = 120.0
    processes: list[TocsinProcess] = field(default_factory=list)

    def stop(self) -> None:
        """SIGKILL whatever is still running (the caller's cleanup)."""
        for proc in self.processes:
            proc.kill()


def _alert(incident: int, n: int, *, resolved: bool) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": {"alertname": "Failover", "incident": f"inc{incident:04d}", "n": str(n)},
        "annotations": {"summary": f"alert {n} of incident {incident}"},
        "startsAt": STARTS_AT,
    }
    if resolved:
        alert["endsAt"] = ENDS_AT
    return alert


def _body(alerts: Sequence[dict[str, Any]], resolved: bool) -> dict[str, Any]:
    return {"version": "4", "status": "resolved" if resolved else "firing",
            "receiver": "tocsin", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am:9093", "alerts": list(alerts)}


def _chunks(items: Sequence[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _split(alerts: int, incidents: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(incident, n) of every alert, HTTP half and Kafka half; each incident's alerts are
    interleaved with the other incidents' so that they reach several instances."""
    per = max(1, alerts // incidents)
    every = [(k, n) for n in range(per) for k in range(incidents)]
    return every[0::2], every[1::2]


class _Sender:
    """Sends HTTP bodies round-robin over the live instances; retries on the next one."""

    def __init__(self, procs: list[TocsinProcess], deadline: float) -> None:
        self.procs = procs
        self.deadline = deadline
        self.turn = 0
        self.accepted = 0
        self.retried = 0

    def send(self, body: dict[str, Any]) -> None:
        attempts = 0
        while time.monotonic() < self.deadline:
            proc = self.procs[self.turn % len(self.procs)]
            self.turn += 1
            try:
                status, _ = request("POST", f"{proc.url}/webhook/alertmanager", body,
                                    timeout_s=10)
            except OSError:
                status = 0
            if status == 200:
                self.accepted += len(body["alerts"])
                return
            attempts += 1
            self.retried += attempts == 1
            threading.Event().wait(0.05 if status == 0 else 0.2)  # 503: its Retry-After, short
        raise AssertionError("an HTTP body was refused by every instance until the deadline")


def _produce(bootstrap: str, alerts: Sequence[tuple[int, int]], *, resolved: bool) -> None:
    """One message per alert, keyed by its incident: an incident's messages stay in one
    partition, in order (as a bridge keying by alert group does; Kafka orders nothing
    across partitions, so a resolution could otherwise overtake its firing alert)."""
    _send_messages(bootstrap, [
        (f"inc{k:04d}".encode(), json.dumps(_body([_alert(k, n, resolved=resolved)],
                                                   resolved)).encode())
        for k, n in alerts])


def _send_messages(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer  # the Kafka client, only where Kafka is used

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    request_timeout_ms=10_000)
        await producer.start()
        try:
            futures = [await producer.send(TOPIC, value, key=key) for key, value in messages]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def _held(conn: psycopg.Connection[Any], pid: int) -> tuple[set[int], set[str], set[int]]:
    """Intake rows and due incidents claimed by the process ``pid`` (claim owners are
    ``role:host:pid:token``), and deliveries leased now (whoever leased them)."""
    owner = f"%:{pid}:%"
    intake = {int(r[0]) for r in conn.execute(
        "SELECT id FROM intake WHERE processed_at IS NULL AND dead_at IS NULL"
        " AND claimed_by LIKE %s AND lease_until > now()", (owner,))}
    incidents = {str(r[0]) for r in conn.execute(
        "SELECT id FROM incidents WHERE claimed_by LIKE %s AND lease_until > now()",
        (owner,))}
    deliveries = {int(r[0]) for r in conn.execute(
        "SELECT id FROM deliveries WHERE status = 'pending' AND lease_until > now()")}
    return intake, incidents, deliveries


def _still_held(conn: psycopg.Connection[Any], pid: int, intake: set[int],
                incidents: set[str], deliveries: set[int]) -> bool:
    owner = f"%:{pid}:%"
    if intake and conn.execute(
            "SELECT count(*) FROM intake WHERE id = ANY(%s) AND processed_at IS NULL"
            " AND dead_at IS NULL", (list(intake),)).fetchone() != (0,):
        return True
    if incidents and conn.execute(
            "SELECT count(*) FROM incidents WHERE id = ANY(%s) AND claimed_by LIKE %s",
            (list(incidents), owner)).fetchone() != (0,):
        return True
    return bool(deliveries) and conn.execute(
        "SELECT count(*) FROM deliveries WHERE id = ANY(%s) AND status = 'pending'",
        (list(deliveries),)).fetchone() != (0,)


def _quiet(conn: psycopg.Connection[Any]) -> tuple[int, int] | None:
    """(incidents, sum of versions) when nothing waits to be routed, flushed or sent."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute(
            "SELECT (SELECT count(*) FROM intake WHERE processed_at IS NULL"
            "        AND dead_at IS NULL),"
            " (SELECT count(*) FROM deliveries WHERE status = 'pending'),"
            " (SELECT count(*) FROM incidents WHERE due_at IS NOT NULL AND due_at <= now()),"
            " (SELECT count(*) FROM incidents),"
            " (SELECT coalesce(sum(version), 0) FROM incidents)").fetchone()
    assert row is not None
    if row[0] or row[1] or row[2]:
        return None
    return int(row[3]), int(row[4])


def _intake_alerts(conn: psycopg.Connection[Any]) -> tuple[Counter[tuple[str, str, str]],
                                                          int]:
    """(incident, n, status) of every intake row, and how many are not routed."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for (text,) in conn.execute("SELECT alert FROM intake"):
        alert = json.loads(text)
        labels = alert["labels"]
        seen[(labels["incident"], labels["n"], alert.get("status", ""))] += 1
    unrouted = conn.execute("SELECT count(*) FROM intake WHERE processed_at IS NULL"
                            " OR dead_at IS NOT NULL").fetchone()
    assert unrouted is not None
    return seen, int(unrouted[0])


def _resent(smtp: SmtpServer) -> int:
    """Copies of a first or resolved notice whose Message-ID was already received."""
    ids = Counter(str(mail.message["Message-ID"]) for mail in list(smtp.received)
                  if mail.subject.partition(" ")[0] in ("firing", "resolved"))
    return sum(count - 1 for count in ids.values())


def _notices(smtp: SmtpServer) -> tuple[Counter[str], Counter[str]]:
    firing: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    for mail in list(smtp.received):
        phase, _, incident = mail.subject.partition(" ")
        if phase == "firing":
            firing[incident.strip()] += 1
        elif phase == "resolved":
            resolved[incident.strip()] += 1
    return firing, resolved


def run_failover(run: FailoverRun) -> FailoverResult:
    """Run the scenario (see the module docstring); the caller stops what it started."""
    began = time.monotonic()
    deadline = began + run.timeout_s
    rules = run.workdir / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "rules.yaml").write_text(RULES, encoding="utf-8")
    run.create_topic(TOPIC, 3)
    kafka = {"bootstrap_servers": [run.kafka_bootstrap], "group_id": "tocsin",
             "topics": [TOPIC], "commit_interval_s": 0.5, "health_interval_s": 0.5,
             "session_timeout_ms": 2000, "heartbeat_interval_ms": 300,
             "rebalance_timeout_ms": 1000}
    for i in range(run.instances):
        workdir = run.workdir / f"tocsin-{i}"
        workdir.mkdir(parents=True, exist_ok=True)
        proc = TocsinProcess(workdir, smtp_port=run.smtp.port, rules=[str(rules)], extra={
            "state_url": run.pg_url, "kafka": kafka,
            "instance": {"id": f"tocsin-{i}", "heartbeat_s": 1, "stale_after_s": 5,
                         "claim_lease_s": run.lease_s},
            "dispatch": {"lease_s": run.lease_s},
            "log": {"level": "warning"}})
        run.processes.append(proc)
    for proc in run.processes:
        proc.start(timeout_s=60)

    http_alerts, kafka_alerts = _split(run.alerts, run.incidents)
    sender = _Sender(run.processes, deadline)
    victim = run.processes[1]
    produced = 0
    with psycopg.connect(run.pg_url, autocommit=True, connect_timeout=5) as conn:
        # Firing: half of it, the SIGKILL, the other half.
        http_chunks = list(_chunks(http_alerts, HTTP_BATCH))
        kafka_chunks = list(_chunks(kafka_alerts, 1))
        middle = len(http_chunks) // 2
        killed_at = 0.0
        held: tuple[set[int], set[str], set[int]] = (set(), set(), set())
        for index, chunk in enumerate(http_chunks):
            if index == middle:
                victim.kill()
                killed_at = time.monotonic()
                held = _held(conn, victim.pid)  # its address stays in the rotation
            sender.send(_body([_alert(k, n, resolved=False) for k, n in chunk], False))
            share = kafka_chunks[index * len(kafka_chunks) // len(http_chunks):
                                 (index + 1) * len(kafka_chunks) // len(http_chunks)]
            if share:
                _produce(run.kafka_bootstrap, [a for c in share for a in c], resolved=False)
                produced += sum(len(c) for c in share)
        wait_until(lambda: not _still_held(conn, victim.pid, *held),
                   timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.05,
                   what="the dead instance's work taken over")
        takeover_s = time.monotonic() - killed_at
        wait_until(lambda: len(_notices(run.smtp)[0]) >= run.incidents,
                   timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.1,
                   what="every first notice")

        # Resolved: everything, over the same two paths, to the instances still alive.
        for chunk in _chunks(http_alerts, HTTP_BATCH):
            sender.send(_body([_alert(k, n, resolved=True) for k, n in chunk], True))
        _produce(run.kafka_bootstrap, kafka_alerts, resolved=True)
        produced += len(kafka_alerts)
        wait_until(lambda: len(_notices(run.smtp)[1]) >= run.incidents,
                   timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.1,
                   what="every resolved notice")
        # Quiescent twice in a row with nothing moved: no notice can still come.
        last: list[tuple[int, int] | None] = [None]

        def settled() -> bool:
            now = _quiet(conn)
            same = now is not None and now == last[0]
            last[0] = now
            return same

        wait_until(settled, timeout_s=max(1.0, deadline - time.monotonic()), interval_s=0.5,
                   what="the instances quiescent")
        seen, unrouted = _intake_alerts(conn)

    expected = {(f"inc{k:04d}", str(n), status) for k, n in [*http_alerts, *kafka_alerts]
                for status in ("firing", "resolved")}
    missing = len(expected - set(seen))
    firing, resolved = _notices(run.smtp)
    return FailoverResult(
        incidents=run.incidents, alerts=len(http_alerts) + len(kafka_alerts),
        accepted_http=sender.accepted, produced_kafka=produced, firing=firing,
        resolved=resolved, unrouted=unrouted + missing,
        held_at_kill={"intake": len(held[0]), "incidents": len(held[1]),
                      "deliveries": len(held[2])},
        takeover_s=takeover_s, elapsed_s=time.monotonic() - began,
        retried_bodies=sender.retried, resent=_resent(run.smtp))
