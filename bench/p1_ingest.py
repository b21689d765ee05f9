"""P1: webhook ingest, durable, 2 Tocsin processes on PostgreSQL, against Alertmanager.

Each side gets the same load in the same run: two ``wrk -t1 -c16 -d8s`` processes at
once (32 connections in all) after a 2 s warm-up, rotating over ``--distinct`` bodies of
10 distinct alerts (10 labels each; the shape of P2's bodies):

- Alertmanager (the real ``prometheus-alertmanager``, cluster off, a null receiver):
  ``POST /api/v2/alerts`` with the 10 alerts as its JSON array, both wrk on its port;
- Tocsin on PostgreSQL: two ``tocsin serve`` on one database, ``POST
  /webhook/alertmanager`` (the v4 body of the same 10 alerts), one wrk per process. A
  200 means the alerts are committed in PostgreSQL (back-pressure off: the routing
  behind, P8's concern, must not turn answers into 503s); the cluster is a throwaway one with
  ``fsync=on`` and ``synchronous_commit=on`` (durable, unlike the test cluster), and the
  intake processor, scheduler and dispatcher run as in production;
- for comparison, 1 Tocsin process on SQLite (``synchronous=FULL``), both wrk on its port.

Runs are interleaved (Alertmanager, Tocsin PostgreSQL, Tocsin SQLite, ...) and the
medians of the alerts/s compared (target P1: Tocsin on PostgreSQL ≥ 1.0× Alertmanager).

Usage: ``python bench/p1_ingest.py [--runs 3] [--duration 8] [--distinct 2000]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import alertmanager, free_port, http, wait_for  # noqa: E402
from bench.ingest_p2 import make_bodies  # noqa: E402
from tests.services.postgres import PostgresServer  # noqa: E402

ALERTS_PER_REQUEST = 10
AM_CONFIG = """
route:
  receiver: devnull
  group_by: [alertname, instance]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: devnull
"""


class DurablePostgres(PostgresServer):
    """The test cluster's layout, started with fsync and synchronous commit on."""

    synchronous_commit = "on"

    def start(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                  str(self.root / "server.log"), "-w", "-t", "30", "-o",
                  f"-k {self.socket_dir} -p {self.port} -c listen_addresses=127.0.0.1"
                  f" -c fsync=on -c synchronous_commit={self.synchronous_commit}"
                  " -c max_connections=200", "start")


@contextmanager
def durable_postgres(synchronous_commit: str = "on") -> Iterator[PostgresServer]:
    """A throwaway durable cluster (as root: initdb and pg_ctl as the postgres user)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL not found (/usr/lib/postgresql/*/bin/initdb): "
                 "apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="tocsin-p1-pg-"))
    (root / "sock").mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "sock", "postgres", "postgres")
    server = DurablePostgres(found[-1].parent, root, free_port(), as_root, itertools.count(1))
    server.synchronous_commit = synchronous_commit
    try:
        server._run(str(server.bin_dir / "initdb"), "-D", str(server.data_dir), "-A", "trust",
                    "-U", "tocsin", "-E", "UTF8")
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def am_bodies(webhook_bodies: list[str]) -> list[str]:
    """The same alerts as Alertmanager's ``POST /api/v2/alerts`` takes them (an array)."""
    out = []
    for text in webhook_bodies:
        alerts = json.loads(text)["alerts"]
        out.append(json.dumps([{"labels": a["labels"], "annotations": a["annotations"],
                                "startsAt": a["startsAt"], "generatorURL": a["generatorURL"]}
                               for a in alerts]))
    return out


def run_wrk(ports: list[int], bodies_file: Path, request_path: str, duration_s: int) -> float:
    """Two ``wrk -t1 -c16`` at once (on ``ports[0]`` and ``ports[-1]``): requests/s summed."""
    env = {**os.environ, "BODIES_FILE": str(bodies_file), "REQUEST_PATH": request_path}
    script = str(ROOT / "bench/post_bodies.lua")
    targets = [ports[0], ports[-1]]

    def start(seconds: int, port: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", script,
             f"http://127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, text=True)

    for proc in [start(2, port) for port in targets]:  # warm-up
        proc.communicate(timeout=60)
    procs = [start(duration_s, port) for port in targets]
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=duration_s + 60)
        if "Non-2xx" in out:
            raise RuntimeError(f"non-2xx answers during the run:\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not match:
            raise RuntimeError(out)
        total += float(match.group(1))
    return total


@contextmanager
def tocsins(work: Path, state_url: str, count: int, smtp_port: int) -> Iterator[list[int]]:
    """``count`` ``tocsin serve`` on ``state_url``; yields their ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for i in range(count):
            port = free_port()
            config = {"listen": f"127.0.0.1:{port}", "state_url": state_url,
                      "rules": [str(ROOT / "rules")], "rules_poll_interval_s": 0,
                      "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                               "from_address": "bench@example.org"},
                      "log": {"level": "warning"}, "instance": {"id": f"bench-{i}"},
                      # Ingest is measured, not the routing behind it (P8): a backlog
                      # beyond the bounds would turn the webhook's answers into 503s.
                      "backpressure": {"enabled": False}}
            path = work / f"tocsin-{i}.yaml"
            path.write_text(yaml.safe_dump(config))
            with (work / f"tocsin-{i}.log").open("ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "router", "serve", "--config", str(path)],
                    cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT))
            url = f"http://127.0.0.1:{port}/readyz"
            wait_for(lambda u=url: http("GET", u, timeout_s=2)[0] == 200, "tocsin", 60)
            ports.append(port)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--pg-synchronous-commit", default="on", choices=["on", "off"],
                        help="off: a diagnosis only (not durable: not P1)")
    args = parser.parse_args()
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        sys.exit("prometheus-alertmanager is not installed")

    figures: dict[str, list[float]] = {"alertmanager": [], "tocsin-pg-2": [],
                                       "tocsin-sqlite-1": []}
    with tempfile.TemporaryDirectory(prefix="tocsin-p1-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        webhook = make_bodies(args.distinct, ALERTS_PER_REQUEST)
        tocsin_file, am_file = work / "webhook.jsonl", work / "am.jsonl"
        tocsin_file.write_text("\n".join(webhook) + "\n")
        am_file.write_text("\n".join(am_bodies(webhook)) + "\n")
        smtp = free_port()
        sink = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/smtp_sink.py"), "--port", str(smtp),
             "--folder", str(work / "mail")], stdout=subprocess.DEVNULL)
        stack.callback(sink.wait)
        stack.callback(sink.terminate)
        pg = stack.enter_context(durable_postgres(args.pg_synchronous_commit))
        for run in range(args.runs):
            with alertmanager(binary, work / f"am-{run}", AM_CONFIG) as (_, url):
                port = int(url.rsplit(":", 1)[1])
                figures["alertmanager"].append(
                    run_wrk([port], am_file, "/api/v2/alerts", args.duration))
            run_dir = work / f"pg-{run}"
            run_dir.mkdir()
            with tocsins(run_dir, pg.url(pg.create_database()), 2, smtp) as ports:
                figures["tocsin-pg-2"].append(
                    run_wrk(ports, tocsin_file, "/webhook/alertmanager", args.duration))
            run_dir = work / f"sqlite-{run}"
            run_dir.mkdir()
            with tocsins(run_dir, f"sqlite:///{run_dir / 'tocsin.db'}", 1, smtp) as ports:
                figures["tocsin-sqlite-1"].append(
                    run_wrk(ports, tocsin_file, "/webhook/alertmanager", args.duration))
            print(f"run {run + 1}: " + ", ".join(
                f"{name} {values[-1] * ALERTS_PER_REQUEST:.0f} alerts/s"
                for name, values in figures.items()))
    med = {name: statistics.median(values) * ALERTS_PER_REQUEST
           for name, values in figures.items()}
    am = med["alertmanager"]
    print(f"median alerts/s at {ALERTS_PER_REQUEST} alerts/request: Alertmanager "
          f"{am:.0f}; Tocsin 2 processes on PostgreSQL {med['tocsin-pg-2']:.0f} "
          f"(ratio {med['tocsin-pg-2'] / am:.2f}, target P1 >= 1.0); Tocsin 1 process on "
          f"SQLite {med['tocsin-sqlite-1']:.0f} (ratio {med['tocsin-sqlite-1'] / am:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
