"""P5: end-to-end latency at a steady 20 alerts/s, Tocsin vs Alertmanager, same run.

- Alertmanager (the real ``prometheus-alertmanager`` binary, cluster off): each alert
  is its own group (``group_by: ['...']``, ``group_wait: 0s``) and goes to a webhook
  receiver. Latency: from the start of ``POST /api/v2/alerts`` to the webhook request
  arriving at the receiver.
- Tocsin (``tocsin serve``, SQLite state with ``synchronous=FULL``: every accepted alert
  is fsync'ed before the 200): each alert its own incident (``group_by: ['...']``,
  ``group_wait: 0s``), one email channel. Latency: from the start of
  ``POST /webhook/alertmanager`` (a v4 body with the one alert) to the email's DATA being
  accepted by the SMTP server (aiosmtpd).

The sender is open-loop (alert ``i`` is sent at ``t0 + i / rate``), the receivers run in
this process, so both ends read the same monotonic clock. Runs are interleaved
(Alertmanager, Tocsin, Alertmanager, ...); p50 and p99 are medians over the runs.
Target P5: Tocsin's p50 ≤ 3× Alertmanager's p50 and p99 ≤ 3× its p99.

Usage: ``python bench/e2e_p5.py [--rate 20] [--seconds 20] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import alertmanager, free_port, tocsin, wait_for  # noqa: E402 — after sys.path

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  ops:
    contacts: [{id: ops, name: Ops, email: ops@example.com}]
templates:
  default:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ incident.count }} alert(s)"}
route:
  audiences: [ops]
  template: default
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
  channels: {default: [email]}
"""

AM_CONFIG = """
route:
  receiver: sink
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: sink
    webhook_configs:
      - url: http://127.0.0.1:{port}/hook
        send_resolved: false
"""


class Arrivals:
    """Monotonic arrival time per alert name, filled by the receivers' threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.at: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.at.setdefault(name, now)


class _SmtpHandler:
    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content)
        self._arrivals.mark(str(message.get("Subject", "")).strip())
        return "250 OK"


class Receivers:
    """An SMTP server and a webhook receiver in one background event loop."""

    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self.smtp_port = free_port()
        self.hook_port = free_port()
        self._smtp = Controller(_SmtpHandler(self.arrivals), hostname="127.0.0.1",
                                port=self.smtp_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        for alert in body.get("alerts", []):
            self.arrivals.mark(alert["labels"]["alertname"])
        return web.Response(text="ok")

    async def _start_hook(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.hook_port).start()

    def __enter__(self) -> Receivers:
        self._smtp.start()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_hook(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._smtp.stop()


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


def send_steady(make_body: Callable[[str], bytes], url: str, names: list[str],
                rate: float) -> dict[str, float]:
    """POST one alert per name at ``rate``/s (open loop); return each send's start time."""
    sent: dict[str, float] = {}
    t0 = time.monotonic() + 0.2
    errors = 0
    for i, name in enumerate(names):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[name] = time.monotonic()
        try:
            if _post(url, make_body(name)) != 200:
                errors += 1
        except OSError:
            errors += 1
    if errors:
        raise SystemExit(f"{errors} POSTs to {url} failed")
    return sent


def latencies_ms(sent: dict[str, float], arrivals: Arrivals, timeout_s: float = 60) -> list[float]:
    """Arrival − send per alert, once every alert arrived (or fail after ``timeout_s``)."""
    wait_for(lambda: all(n in arrivals.at for n in sent), "every alert delivered",
             timeout_s=timeout_s)
    return sorted((arrivals.at[n] - t) * 1000 for n, t in sent.items())


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _labels(name: str) -> dict[str, str]:
    return {"alertname": name, "instance": "host-1:9100", "job": "node",
            "severity": "critical", "team": "infra", "env": "production",
            "region": "eu-west-3", "cluster": "prod-1", "namespace": "core",
            "service": "api"}


def run_alertmanager(binary: str, work: Path, receivers: Receivers, names: list[str],
                     rate: float) -> list[float]:
    config = AM_CONFIG.replace("{port}", str(receivers.hook_port))
    with alertmanager(binary, work, config) as (_, url):
        starts = datetime.now(UTC).isoformat()

        def body(name: str) -> bytes:
            return json.dumps([{"labels": _labels(name), "annotations": {"summary": name},
                                "startsAt": starts}]).encode()

        sent = send_steady(body, f"{url}/api/v2/alerts", names, rate)
        return latencies_ms(sent, receivers.arrivals)


def run_tocsin(work: Path, receivers: Receivers, names: list[str], rate: float) -> list[float]:
    with tocsin(work, RULES, receivers.smtp_port) as (_, url):
        starts = datetime.now(UTC).isoformat()

        def body(name: str) -> bytes:
            return json.dumps({
                "version": "4", "status": "firing", "receiver": "tocsin",
                "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                "externalURL": "http://am", "groupKey": "{}",
                "alerts": [{"status": "firing", "labels": _labels(name),
                            "annotations": {"summary": name}, "startsAt": starts,
                            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}],
            }).encode()

        sent = send_steady(body, f"{url}/webhook/alertmanager", names, rate)
        return latencies_ms(sent, receivers.arrivals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side")
    args = parser.parse_args()
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        print("prometheus-alertmanager is not installed", file=sys.stderr)
        return 2
    count = int(args.rate * args.seconds)
    results: dict[str, list[tuple[float, float]]] = {"alertmanager": [], "tocsin": []}
    with tempfile.TemporaryDirectory(prefix="tocsin-p5-") as tmp, Receivers() as receivers:
        for run in range(args.runs):
            for side in ("alertmanager", "tocsin"):
                work = Path(tmp) / f"{side}-{run}"
                work.mkdir()
                names = [f"P5{side[0]}{run}n{i}" for i in range(count)]
                if side == "alertmanager":
                    lat = run_alertmanager(binary, work, receivers, names, args.rate)
                else:
                    lat = run_tocsin(work, receivers, names, args.rate)
                p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
                results[side].append((p50, p99))
                print(f"run {run + 1} {side:12s} n={len(lat)} p50 {p50:7.2f} ms  "
                      f"p99 {p99:7.2f} ms  max {lat[-1]:7.2f} ms", flush=True)
    am50 = statistics.median(r[0] for r in results["alertmanager"])
    am99 = statistics.median(r[1] for r in results["alertmanager"])
    t50 = statistics.median(r[0] for r in results["tocsin"])
    t99 = statistics.median(r[1] for r in results["tocsin"])
    print(f"alertmanager POST → webhook:  p50 {am50:.2f} ms  p99 {am99:.2f} ms")
    print(f"tocsin POST → SMTP accepted:  p50 {t50:.2f} ms  p99 {t99:.2f} ms")
    print(f"ratio p50 {t50 / am50:.2f}  p99 {t99 / am99:.2f}  (P5 target ≤ 3.0 each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
