"""`tocsin serve` as a real process: startup line, graceful drain on SIGTERM, exit 0.

SMTP points at a port where nothing listens, so deliveries stay pending: the drain must
leave them in the outbox (for the next start), not lose or fail them.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from router.store import open_store
from tests.services.http import wait_until
from tests.services.ports import free_port
from tests.services.tocsin import TocsinProcess

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/alertmanager/02-firing-grouped-3.json"


def test_sigterm_drains_and_exits_0_keeping_unsent_rows_pending(tmp_path: Path) -> None:
    """Accepted alerts are routed; SIGTERM exits 0; unsent deliveries stay pending."""
    tocsin = TocsinProcess(
        tmp_path, smtp_port=free_port(), bearer_token="tok-123",
        extra={"smtp": {"username": "mailer", "password": "smtp-pa55"}},
    ).start()
    try:
        status, answer = tocsin.post_webhook(
            json.loads(FIXTURE.read_text()), headers={"Authorization": "Bearer tok-123"}
        )
        assert (status, answer) == (200, {"status": "success", "accepted": 3})
        # The 3 alerts form one incident: one first notice per recipient and channel.
        wait_until(lambda: tocsin.deliveries(), what="the incident's first notice planned")
        planned = len(tocsin.deliveries())
        assert tocsin.terminate() == 0
    finally:
        tocsin.kill()

    log = tocsin.log()
    started = next(json.loads(line) for line in log.splitlines()
                   if '"tocsin started"' in line)
    assert started["listen"] == f"127.0.0.1:{tocsin.port}"
    assert started["rule_files"] and all(f.endswith(".yaml") for f in started["rule_files"])
    assert started["state_url"].endswith("tocsin.db")
    assert '"shutdown requested"' in log and '"tocsin stopped"' in log
    assert "tok-123" not in log and "smtp-pa55" not in log

    counts = asyncio.run(_counts(f"sqlite:///{tmp_path / 'tocsin.db'}"))
    assert counts["intake_pending"] == 0
    assert counts["pending"] + counts["failed"] == planned  # none sent


def test_port_in_use_exits_1(tmp_path: Path) -> None:
    """When the listen address is taken, serve logs why and exits 1 (no hang)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tocsin = TocsinProcess(tmp_path, smtp_port=free_port(),
                               extra={"listen": f"127.0.0.1:{port}"})
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TOCSIN_")}
        result = subprocess.run(
            [sys.executable, "-m", "router", "serve", "--config", str(tocsin.config_path)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 1
    assert '"startup failed"' in result.stderr
    assert "address already in use" in result.stderr


async def _counts(url: str) -> dict[str, int]:
    store = open_store(url)
    await store.start()
    try:
        return await store.counts()
    finally:
        await store.close()


def test_unreachable_postgresql_exits_1_with_a_clear_error(tmp_path: Path) -> None:
    """state_url on a PostgreSQL that does not answer: serve says so in one line, exits 1."""
    port = free_port()
    tocsin = TocsinProcess(tmp_path, smtp_port=free_port(), extra={
        "state_url": f"postgresql://tocsin:pa55@127.0.0.1:{port}/tocsin"})
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TOCSIN_")}
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve", "--config", str(tocsin.config_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if '"startup failed"' in line]
    failure = json.loads(line)
    assert failure["error_type"] == "StoreUnavailable"
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/tocsin" in failure["error"]
    assert "pa55" not in result.stderr


def test_serve_on_postgresql_accepts_routes_and_plans(tmp_path: Path) -> None:
    """A real `tocsin serve` on a PostgreSQL state: the 200 is committed there, the alerts
    are routed into an incident and its first notices planned in the same database."""
    from tests.services.postgres import fresh_database_url

    url = fresh_database_url()
    tocsin = TocsinProcess(tmp_path, smtp_port=free_port(), extra={"state_url": url}).start()
    try:
        status, answer = tocsin.post_webhook(json.loads(FIXTURE.read_text()))
        assert (status, answer) == (200, {"status": "success", "accepted": 3})
        wait_until(lambda: tocsin.deliveries(), what="the incident's first notice planned")
        assert tocsin.terminate() == 0
    finally:
        tocsin.kill()
    counts = asyncio.run(_counts(url))
    assert counts["intake_pending"] == 0 and counts["pending"] + counts["failed"] > 0
