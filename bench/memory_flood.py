"""Memory under a flood of large distinct alerts, against the same flood of small ones.

Two runs of the real service (``tocsin serve``, SQLite state), one after the other in the
same process of this script: each is flooded through its Alertmanager webhook for
``--duration`` seconds by ``--senders`` threads, then left idle ``--idle`` seconds.

- **large**: every alert distinct, with a ``payload`` label and a ``description``
  annotation of ``--value-kib`` KiB each (default 64 KiB), ``--per-request`` alerts per
  request (default 4, ~512 KiB bodies, under the 1 MiB ``webhook.max_body_bytes``);
- **small** (the reference): the same flood with 10-byte values.

Alerts are grouped by ``alertname`` (8 names) with a 1 h ``group_wait``: nothing is sent,
what is measured is what intake, routing and the incident store keep. RSS (``VmRSS``) is
sampled every 0.25 s: the baseline before the flood, the peak during it, and the value
after the idle time (intake drained). The figure to check is the large run's peak and
idle RSS against ``baseline + memory.cache_bytes`` plus the reference's growth (the
documented bound, docs/service.md "Memory").

Usage: ``python bench/memory_flood.py [--duration 20] [--idle 10] [--value-kib 64]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import free_port, http, tocsin, wait_for
from bench.memory_p7 import rss_kib

RULES = """
defaults: {locale: en, timezone: UTC}
audiences:
  ops:
    contacts: [{id: ops, name: Ops, email: ops@example.com}]
templates:
  default:
    email:
      en: {subject: "{{ alert.labels.alertname }}", text: "{{ incident.count }}"}
route:
  audiences: [ops]
  template: default
  group_by: [alertname]
  group_wait: 1h
  group_interval: 1h
  channels: {default: [email]}
"""


def _body(start: int, count: int, value_bytes: int, starts: str) -> bytes:
    alerts = []
    for i in range(start, start + count):
        tag = f"{i:010d}"
        value = (tag * (value_bytes // len(tag) + 1))[:value_bytes]
        alerts.append({
            "status": "firing", "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "labels": {"alertname": f"Flood{i % 8}", "instance": f"host-{i}",
                       "payload": value},
            "annotations": {"description": value},
        })
    return json.dumps({"version": "4", "status": "firing", "receiver": "tocsin",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://am", "groupKey": "{}",
                       "alerts": alerts}).encode()


def flood(url: str, pid: int, *, duration_s: float, idle_s: float, senders: int,
          per_request: int, value_bytes: int) -> dict[str, Any]:
    """Flood ``url`` and sample the RSS of ``pid``; the figures of one run."""
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    counter = itertools.count()
    lock = threading.Lock()
    sent = {"alerts": 0, "bytes": 0, "refused": 0}
    stop_at = time.monotonic() + duration_s

    def sender() -> None:
        while time.monotonic() < stop_at:
            with lock:
                start = next(counter) * per_request
            body = _body(start, per_request, value_bytes, starts)
            req = urllib.request.Request(f"{url}/webhook/alertmanager", data=body,
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    ok = resp.status == 200
            except OSError:
                ok = False
            with lock:
                if ok:
                    sent["alerts"] += per_request
                    sent["bytes"] += len(body)
                else:
                    sent["refused"] += 1

    baseline = rss_kib(pid)
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    peak = baseline
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.25)

    def drained() -> bool:
        nonlocal peak
        peak = max(peak, rss_kib(pid))
        _, text = http("GET", f"{url}/metrics", timeout_s=10)
        for line in text.splitlines():
            if line.startswith("tocsin_intake_pending "):
                return float(line.split()[1]) == 0
        return False

    wait_for(drained, "intake drained", timeout_s=600)
    idle_until = time.monotonic() + idle_s
    while time.monotonic() < idle_until:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.25)
    return {"baseline": baseline, "peak": peak, "idle": rss_kib(pid), **sent}


def run(work: Path, value_bytes: int, args: argparse.Namespace) -> dict[str, Any]:
    with tocsin(work, RULES, smtp_port=free_port(),
                state_query="?synchronous=normal") as (proc, url):
        time.sleep(1)
        return flood(url, proc.pid, duration_s=args.duration, idle_s=args.idle,
                     senders=args.senders, per_request=args.per_request,
                     value_bytes=value_bytes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="flood seconds")
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds after")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--per-request", type=int, default=4)
    parser.add_argument("--value-kib", type=int, default=64)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tocsin-flood-") as tmp:
        for name, size in (("small", 10), ("large", args.value_kib * 1024)):
            work = Path(tmp) / name
            work.mkdir()
            results[name] = run(work, size, args)
    print(f"flood {args.duration:g} s, {args.senders} senders, {args.per_request} alerts per "
          f"request, then {args.idle:g} s idle")
    for name, r in results.items():
        print(f"{name:5}: {r['alerts']} alerts, {r['bytes'] / 2**20:.0f} MiB sent, "
              f"{r['refused']} refused; RSS baseline {r['baseline'] / 1024:.0f} MiB, "
              f"peak {r['peak'] / 1024:.0f} MiB, after idle {r['idle'] / 1024:.0f} MiB")
    small, large = results["small"], results["large"]
    print(f"large - small: peak {(large['peak'] - small['peak']) / 1024:+.0f} MiB, "
          f"after idle {(large['idle'] - small['idle']) / 1024:+.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
