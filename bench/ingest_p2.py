"""P2: webhook ingest, 1 process, 1 alert per request, durable, against bare aiohttp+pydantic.

Both servers get the same wrk command (``-t1 -c32 -d8s --latency`` after a 2 s warm-up)
and the same Alertmanager v4 bodies (1 alert of 10 labels; ``--distinct`` different
alerts in rotation, so Tocsin persists and routes each request and deduplicates repeats).
Runs are interleaved (reference, Tocsin, reference, ...) and the medians compared.

Usage: ``python bench/ingest_p2.py [--runs 3] [--duration 8] [--distinct 1000]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_bodies(count: int, alerts_per_body: int = 1) -> list[str]:
    """Alertmanager v4 bodies shaped like the captured fixtures, 10 labels per alert."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    bodies = []
    for i in range(count):
        alerts = []
        for j in range(alerts_per_body):
            labels = {
                "alertname": "HighRequestLatency",
                "instance": f"web-{i}-{j}:9100",
                "job": "api",
                "severity": "warning",
                "team": "web",
                "service": "checkout",
                "env": "production",
                "region": "eu-west-3",
                "cluster": "prod-1",
                "namespace": "shop",
            }
            alerts.append({
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"p99 latency above 1s on web-{i}"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
                "fingerprint": "0000000000000000",
            })
        bodies.append(json.dumps({
            "receiver": "tocsin", "status": "firing", "alerts": alerts,
            "groupLabels": {"alertname": "HighRequestLatency"},
            "commonLabels": {"alertname": "HighRequestLatency"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "version": "4",
            "groupKey": '{}:{alertname="HighRequestLatency"}', "truncatedAlerts": 0,
        }))
    return bodies


def wait_ready(url: str, timeout_s: float = 20) -> None:
    """Poll ``url`` until the server answers anything below 500."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except OSError:
            pass  # not listening yet
        pause.wait(0.05)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def run_wrk(port: int, bodies_file: Path, duration_s: int, connections: int) -> float:
    env = {**os.environ, "BODIES_FILE": str(bodies_file)}
    script = str(ROOT / "bench/post_bodies.lua")
    url = f"http://127.0.0.1:{port}"
    subprocess.run(["wrk", "-t1", f"-c{connections}", "-d2s", "-s", script, url],
                   env=env, check=True, capture_output=True)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", script, url],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers during the run:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(out)
    return float(match.group(1))


def start_reference(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench/reference_receiver.py"),
                             "--port", str(port)])
    return proc


def start_tocsin(workdir: Path, port: int, smtp_port: int) -> subprocess.Popen[bytes]:
    config = {
        "listen": f"127.0.0.1:{port}",
        "state_url": f"sqlite:///{workdir / 'tocsin.db'}",
        "rules": [str(ROOT / "rules")],
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                 "from_address": "bench@example.org"},
        "log": {"level": "warning"},
    }
    path = workdir / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    return subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(path)],
                            cwd=workdir, env=env, stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--distinct", type=int, default=1000)
    args = parser.parse_args()

    ref_rps: list[float] = []
    tocsin_rps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-") as tmp:
        work = Path(tmp)
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text("\n".join(make_bodies(args.distinct)) + "\n")
        smtp = free_port()
        sink = subprocess.Popen(
            [sys.executable, str(ROOT / "deploy/local/smtp_sink.py"), "--port", str(smtp),
             "--folder", str(work / "mail")], stdout=subprocess.DEVNULL)
        try:
            for run in range(args.runs):
                port = free_port()
                ref = start_reference(port)
                try:
                    wait_ready(f"http://127.0.0.1:{port}/", 20)
                    ref_rps.append(run_wrk(port, bodies_file, args.duration, args.connections))
                finally:
                    stop(ref)
                port = free_port()
                state = work / f"tocsin-{run}"
                state.mkdir()
                toc = start_tocsin(state, port, smtp)
                try:
                    wait_ready(f"http://127.0.0.1:{port}/readyz", 30)
                    tocsin_rps.append(run_wrk(port, bodies_file, args.duration, args.connections))
                finally:
                    stop(toc)
                print(f"run {run + 1}: reference {ref_rps[-1]:.0f} req/s, "
                      f"tocsin {tocsin_rps[-1]:.0f} req/s")
        finally:
            sink.terminate()
            sink.wait()
    ref_m = statistics.median(ref_rps)
    toc_m = statistics.median(tocsin_rps)
    print(f"median: reference (aiohttp+pydantic) {ref_m:.0f} req/s, tocsin (durable) "
          f"{toc_m:.0f} req/s, ratio {toc_m / ref_m:.2f} (target P2 >= 0.70)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
