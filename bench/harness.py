"""What the benchmarks share: free ports, tiny HTTP calls, and the two servers they run.

:func:`tocsin` and :func:`alertmanager` start the real processes on 127.0.0.1 (free
ports), wait until they are ready, yield ``(process, base URL)`` and stop them by PID
(SIGTERM, then wait) whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ROOT", "alertmanager", "free_port", "http", "tocsin", "wait_for"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: Any = None, timeout_s: float = 60.0) -> tuple[int, str]:
    """(status, text) of one JSON request; status 0 when the server cannot be reached."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        return 0, str(err)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def tocsin(work: Path, rules: str, smtp_port: int,
           state_query: str = "") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``tocsin serve`` with ``rules`` (YAML text), SQLite state in ``work``."""
    port = free_port()
    rules_dir = work / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    (rules_dir / "rules.yaml").write_text(rules)
    config = {
        "listen": f"127.0.0.1:{port}",
        "state_url": f"sqlite:///{work / 'tocsin.db'}{state_query}",
        "rules": [str(rules_dir)],
        "smtp": {"host": "127.0.0.1", "port": smtp_port},
        "log": {"level": "warning"},
        "rules_poll_interval_s": 0,
    }
    (work / "tocsin.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    with (work / "tocsin.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--config", str(work / "tocsin.yaml")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http("GET", f"{url}/readyz", timeout_s=2)[0] == 200, "tocsin")
        yield proc, url
    finally:
        _stop(proc, 60)


@contextmanager
def alertmanager(binary: str, work: Path,
                 config: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The real Alertmanager with ``config`` (YAML text), cluster off, state in ``work``."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    (work / "am.yml").write_text(config)
    with (work / "am.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={work / 'am.yml'}", f"--storage.path={work / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http("GET", f"{url}/-/ready", timeout_s=2)[0] == 200, "alertmanager")
        yield proc, url
    finally:
        _stop(proc, 30)
