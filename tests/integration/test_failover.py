"""Three Tocsin instances on one PostgreSQL, one SIGKILLed mid-way: no notice lost, none twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kafka.broker import Tansu
from tests.services.failover import FailoverRun, run_failover
from tests.services.postgres import fresh_database_url
from tests.services.smtp import SmtpServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path).start()
    yield broker
    broker.stop()


def test_sigkill_of_one_instance_loses_and_duplicates_no_notice(
        tmp_path: Path, tansu: Tansu, smtp_server: SmtpServer) -> None:
    """300 alerts in 30 incidents over HTTP (all three) and a consumer group; one instance
    killed in the middle: every accepted alert routed, every incident's first and
    resolved notice planned once and received (a send in flight at the kill may arrive
    twice, with one Message-ID), the dead one's claims taken after their lease."""
    run = FailoverRun(workdir=tmp_path, pg_url=fresh_database_url(),
                      kafka_bootstrap=tansu.bootstrap,
                      create_topic=lambda name, n: tansu.create_topic(name, partitions=n),
                      smtp=smtp_server, alerts=300, incidents=30, lease_s=3.0,
                      timeout_s=90.0)
    try:
        result = run_failover(run)
    finally:
        run.stop()
    assert result.accepted_http + result.produced_kafka == 2 * result.alerts  # firing + resolved
    assert result.unrouted == 0
    assert len(result.firing) == len(result.resolved) == 30
    assert result.lost() == 0, (result.firing, result.resolved)
    # Planned once each: a copy can only be a send the dead instance had in flight (the
    # SMTP server took it, its "sent" was never recorded), resent with the same
    # Message-ID after the lease; never a second delivery for one notice.
    assert result.duplicated() == result.resent, (result.firing, result.resolved)
    assert result.resent <= result.held_at_kill["deliveries"]
