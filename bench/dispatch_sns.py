"""SMS dispatch throughput: the outbox through the SNS adapter vs raw boto3, same moto.

Both sides publish N SMS to one ``moto_server`` started by this script (127.0.0.1, free
port, stopped by PID), in the same run, interleaved (reference, Tocsin, reference, ...):

- reference: raw ``boto3`` ``publish(PhoneNumber=..., MessageAttributes=SMSType)`` calls
  from ``--concurrency`` threads (one shared client, botocore retries off, like Tocsin);
- Tocsin: N deliveries committed to a SQLite outbox (``synchronous=FULL``), then the
  :class:`Dispatcher` with the SNS ``sms`` channel, rate limit off, ``--concurrency``
  sends in flight; timed from the first claim to the last row marked sent.

Prints deliveries/s for each run, the medians and the ratio Tocsin / reference.
Run: ``python bench/dispatch_sns.py`` (``--messages 2000 --rounds 3 --concurrency 8``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402 - after the path setup
import botocore.config  # noqa: E402

from adapters.sns import SnsClient, SnsSettings, SnsSmsChannel  # noqa: E402
from router.clock import SystemClock  # noqa: E402
from router.logging import configure_logging  # noqa: E402
from router.models import NewDelivery, RenderedMessage  # noqa: E402
from router.store import SqliteStore  # noqa: E402
from router.workers.dispatcher import Dispatcher  # noqa: E402
from router.workers.retry import RetryPolicy  # noqa: E402

TEXT = "ALERTE critical : PostgresDown sur db-1 - La base de facturation ne répond plus"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5):
                return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)


def reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def reference_run(url: str, messages: int, concurrency: int) -> float:
    client = boto3.session.Session().client(
        "sns", region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                      max_pool_connections=concurrency))
    attrs = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}

    def one(i: int) -> None:
        client.publish(PhoneNumber=f"+3361234{i % 10000:04d}", Message=TEXT,
                       MessageAttributes=attrs)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(messages)))
    elapsed = time.perf_counter() - started
    client.close()
    return messages / elapsed


async def tocsin_run(url: str, messages: int, concurrency: int, workdir: Path) -> float:
    store = SqliteStore(str(workdir / f"bench-{time.monotonic_ns()}.db"))
    await store.start()
    now = datetime.now(UTC)
    base = NewDelivery(idempotency_key="", incident_key="fp", fingerprint="fp",
                       route_id="root", phase="firing", channel="sms", recipient="",
                       contact_id="c", audience="ops", severity="critical", locale="fr",
                       message=RenderedMessage(subject="", text=TEXT))
    await store.commit_plan(
        [], [replace(base, idempotency_key=f"k{i}", recipient=f"+3361234{i % 10000:04d}")
             for i in range(messages)], now=now, deadline_s=3600)
    channel = SnsSmsChannel(SnsClient(SnsSettings(
        endpoint_url=url, access_key_id="testing", secret_access_key="testing",
        max_workers=concurrency)))
    dispatcher = Dispatcher(store, {"sms": channel}, clock=SystemClock(),
                            policy=RetryPolicy(), concurrency=concurrency,
                            poll_interval_s=0.05)
    started = time.perf_counter()
    task = asyncio.create_task(dispatcher.run())
    while True:
        if (await store.counts())["sent"] >= messages:
            break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await dispatcher.stop()
    await task
    await channel.close()
    counts = await store.counts()
    await store.close()
    if counts["failed"]:
        raise RuntimeError(f"{counts['failed']} deliveries failed")
    return messages / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    configure_logging("warning", "json")  # per-delivery info lines would dominate
    process, url = start_moto()
    refs: list[float] = []
    ours: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            reference_run(url, 100, args.concurrency)  # warm-up (imports, connections)
            for round_no in range(1, args.rounds + 1):
                reset(url)
                refs.append(reference_run(url, args.messages, args.concurrency))
                reset(url)
                ours.append(asyncio.run(tocsin_run(url, args.messages, args.concurrency,
                                                   Path(tmp))))
                print(f"round {round_no}: raw boto3 {refs[-1]:.0f}/s, "
                      f"Tocsin outbox {ours[-1]:.0f} deliveries/s")
    finally:
        process.terminate()
        process.wait(timeout=10)
    ref, tocsin = statistics.median(refs), statistics.median(ours)
    print(f"median: raw boto3 {ref:.0f} publish/s, Tocsin {tocsin:.0f} deliveries/s, "
          f"ratio {tocsin / ref:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
