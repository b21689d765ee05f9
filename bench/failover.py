"""Failover: three Tocsin instances on one PostgreSQL, one SIGKILLed in the middle.

The scenario of ``tests/integration/test_failover.py`` (``tests/services/failover.py``)
at the issue's size: ``--alerts`` alerts (5,000) in ``--incidents`` incidents (500),
half over HTTP spread round-robin over the three instances (a body the dead instance
does not answer is sent to the next one, as Alertmanager retries), half through a Kafka
consumer group (tansu, three partitions); one instance SIGKILLed halfway through the
firing alerts; then every alert resolved. Real processes (``tocsin serve``), a
throwaway PostgreSQL cluster (Debian's binaries, ``tests/services/postgres.py``),
e-mail to an aiosmtpd server.

Printed: notices lost (first or resolved notice never received) and duplicated (received
more than once), accepted alerts not routed, what the dead instance held at the kill,
and the **takeover time**: from the SIGKILL until everything it held was finished by the
other instances (bounded below by ``--lease-s``, the claim and delivery lease).

Usage: ``python bench/failover.py [--alerts 5000] [--incidents 500] [--lease-s 5]
[--runs 1]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kafka.broker import Tansu  # noqa: E402 — after sys.path
from tests.services.failover import FailoverResult, FailoverRun, run_failover  # noqa: E402
from tests.services.postgres import fresh_database_url, stop_postgres  # noqa: E402
from tests.services.smtp import SmtpServer  # noqa: E402


def one_run(args: argparse.Namespace) -> FailoverResult:
    """One scenario on fresh services (a new database, broker and SMTP server)."""
    with tempfile.TemporaryDirectory(prefix="tocsin-failover-") as tmp:
        work = Path(tmp)
        broker = Tansu(work).start()
        smtp = SmtpServer().start()
        run = FailoverRun(workdir=work, pg_url=fresh_database_url(),
                          kafka_bootstrap=broker.bootstrap,
                          create_topic=lambda name, n: broker.create_topic(name, partitions=n),
                          smtp=smtp, alerts=args.alerts, incidents=args.incidents,
                          lease_s=args.lease_s, timeout_s=args.timeout_s)
        try:
            return run_failover(run)
        finally:
            run.stop()
            smtp.stop()
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--lease-s", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    takeovers: list[float] = []
    try:
        for index in range(args.runs):
            r = one_run(args)
            takeovers.append(r.takeover_s)
            print(f"run {index + 1}: {r.alerts} alerts in {r.incidents} incidents, "
                  f"{r.accepted_http} accepted over HTTP ({r.retried_bodies} bodies sent "
                  f"again to another instance), {r.produced_kafka} through Kafka; "
                  f"{r.elapsed_s:.1f} s")
            print(f"  lost notices {r.lost()}, duplicated notices {r.duplicated()} "
                  f"({r.resent} of them a send in flight at the kill, repeated with its "
                  "Message-ID) "
                  f"(first notices for {len(r.firing)} incidents, resolved for "
                  f"{len(r.resolved)}), accepted alerts not routed {r.unrouted}")
            held = ", ".join(f"{k} {v}" for k, v in r.held_at_kill.items())
            print(f"  held by the dead instance at the kill: {held}; "
                  f"takeover {r.takeover_s:.2f} s (lease {args.lease_s:g} s)")
    finally:
        stop_postgres()
    if len(takeovers) > 1:
        print(f"takeover median {statistics.median(takeovers):.2f} s over {len(takeovers)} runs")


if __name__ == "__main__":
    main()
