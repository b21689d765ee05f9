"""P7: memory held for 100k active alerts in 5k incidents, Tocsin vs Alertmanager.

Both get the same 100,000 firing alerts (10 labels each; ``alertname`` × ``service``
make 5,000 groups of 20), in the same run:

- Alertmanager (the real ``prometheus-alertmanager`` binary, cluster off, one
  null receiver, ``group_by: [alertname, service]``) through ``POST /api/v2/alerts``;
- Tocsin (``tocsin serve``, SQLite state, rules grouping by ``alertname, service`` with a
  1 h ``group_wait`` so no message is planned while measuring) through its Alertmanager
  webhook, 100 alerts per request, until every alert is in an incident.

RSS (``VmRSS`` of the process) is read before loading (baseline) and after (loaded,
after a short settle); the figure is the loaded RSS per alert and the growth per alert,
and the ratio Tocsin / Alertmanager of each (target P7: ≤ 0.5).

Usage: ``python bench/memory_p7.py [--alerts 100000] [--incidents 5000]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import alertmanager, free_port, http, tocsin, wait_for

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
  group_by: [alertname, service]
  group_wait: 1h
  group_interval: 1h
  channels: {default: [email]}
"""

AM_CONFIG = """
route:
  receiver: devnull
  group_by: [alertname, service]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: devnull
"""


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def make_alerts(count: int, groups: int) -> list[dict[str, Any]]:
    """``count`` alerts of 10 labels in ``groups`` (alertname, service) groups."""
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    names = max(1, groups // 50)
    alerts = []
    for i in range(count):
        group = i % groups
        labels = {
            "alertname": f"Alert{group % names}", "service": f"svc-{group // names}",
            "instance": f"host-{i}:9100", "job": "node", "severity": "warning",
            "team": "infra", "env": "production", "region": "eu-west-3",
            "cluster": "prod-1", "namespace": "core",
        }
        alerts.append({"labels": labels, "annotations": {"summary": f"alert {i} firing"},
                       "startsAt": starts})
    return alerts


def load_alertmanager(binary: str, workdir: Path, alerts: list[dict[str, Any]]) -> tuple[int, int]:
    """Start Alertmanager, load the alerts; return (baseline, loaded) RSS in KiB."""
    with alertmanager(binary, workdir, AM_CONFIG) as (proc, url):
        time.sleep(1)
        baseline = rss_kib(proc.pid)
        for start in range(0, len(alerts), 1000):
            status, text = http("POST", f"{url}/api/v2/alerts", alerts[start:start + 1000])
            if status != 200:
                raise SystemExit(f"alertmanager refused alerts: {status} {text[:200]}")
        time.sleep(3)
        return baseline, rss_kib(proc.pid)


def load_tocsin(workdir: Path, alerts: list[dict[str, Any]], groups: int) -> tuple[int, int]:
    """Start Tocsin, load the alerts through its webhook; return (baseline, loaded) KiB."""
    # synchronous=normal: memory is measured here, not durability; nothing is sent
    # (group_wait 1h), so no SMTP server listens on the port.
    with tocsin(workdir, RULES, smtp_port=free_port(),
                state_query="?synchronous=normal") as (proc, url):
        time.sleep(1)
        baseline = rss_kib(proc.pid)
        ends = "0001-01-01T00:00:00Z"
        for start in range(0, len(alerts), 100):
            body = {"version": "4", "status": "firing", "receiver": "tocsin",
                    "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                    "externalURL": "http://am", "groupKey": "{}",
                    "alerts": [{**a, "status": "firing", "endsAt": ends, "generatorURL": ""}
                               for a in alerts[start:start + 100]]}
            status, text = http("POST", f"{url}/webhook/alertmanager", body)
            if status != 200:
                raise SystemExit(f"tocsin refused alerts: {status} {text[:200]}")

        def drained() -> bool:
            _, text = http("GET", f"{url}/metrics", timeout_s=10)
            for line in text.splitlines():
                if line.startswith("tocsin_intake_pending "):
                    return float(line.split()[1]) == 0
            return False

        wait_for(drained, "intake drained", timeout_s=600)
        status, text = http("GET", f"{url}/api/v1/incidents?limit=1000&state=open")
        time.sleep(3)
        loaded = rss_kib(proc.pid)
        open_incidents = len(json.loads(text)) if status == 200 else -1
        print(f"tocsin: incidents listed (first page, up to 1000): {open_incidents}; "
              f"expected groups: {groups}", file=sys.stderr)
        return baseline, loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--incidents", type=int, default=5_000)
    args = parser.parse_args()
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        print("prometheus-alertmanager is not installed", file=sys.stderr)
        return 2
    alerts = make_alerts(args.alerts, args.incidents)
    with tempfile.TemporaryDirectory(prefix="tocsin-p7-") as tmp:
        work = Path(tmp)
        (work / "am").mkdir()
        (work / "tocsin").mkdir()
        am_base, am_loaded = load_alertmanager(binary, work / "am", alerts)
        t_base, t_loaded = load_tocsin(work / "tocsin", alerts, args.incidents)
    n = args.alerts
    print(f"alerts: {n} in {args.incidents} groups")
    print(f"alertmanager RSS: baseline {am_base / 1024:.1f} MiB, loaded {am_loaded / 1024:.1f} "
          f"MiB → {am_loaded * 1024 / n:.0f} B/alert loaded, "
          f"{(am_loaded - am_base) * 1024 / n:.0f} B/alert growth")
    print(f"tocsin RSS:       baseline {t_base / 1024:.1f} MiB, loaded {t_loaded / 1024:.1f} "
          f"MiB → {t_loaded * 1024 / n:.0f} B/alert loaded, "
          f"{(t_loaded - t_base) * 1024 / n:.0f} B/alert growth")
    print(f"ratio tocsin/alertmanager (loaded RSS): {t_loaded / am_loaded:.2f}  (P7 target ≤ 0.5)")
    growth_am = max(1, am_loaded - am_base)
    print(f"ratio tocsin/alertmanager (growth):     {(t_loaded - t_base) / growth_am:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
