"""Tocsin itself, started as a real process (``python -m router serve``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .faketime import faketime_env
from .http import request, wait_until
from .ports import free_port

REPO = Path(__file__).resolve().parents[2]
#: With webhook credentials the API is closed: the helpers read with this token.
READ_TOKEN = "tests-read-token-0123456789"


class TocsinProcess:
    """A Tocsin server process with its own config and SQLite state in ``workdir``.

    The same ``workdir`` (and so the same state) survives restarts, which is what the
    crash-safety tests rely on.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        smtp_port: int,
        rules: list[str] | None = None,
        bearer_token: str | None = None,
        extra: dict[str, Any] | None = None,
        timer_scale: float = 0.02,
    ) -> None:
        """``timer_scale`` shortens every incident timer of the rules (group_wait 5s →
        0.1s): tests see incidents live in seconds."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.port}",
            "state_url": f"sqlite:///{workdir / 'tocsin.db'}",
            "rules": rules or [str(REPO / "rules")],
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "from_address": "tocsin@example.org",
                "timeout_s": 5,
            },
            "dispatch": {
                "backoff_initial_s": 0.2,
                "backoff_max_s": 1.0,
                "lease_s": 3,
                "poll_interval_s": 0.1,
            },
            "incidents": {"poll_interval_s": 0.1, "timer_scale": timer_scale},
        }
        self.read_headers: dict[str, str] = {}
        if bearer_token:
            config["webhook"] = {"bearer_token": bearer_token}
            config["api"] = {"tokens": [{"name": "tests", "token": READ_TOKEN,
                                         "scopes": ["read"]}]}
            self.read_headers = {"Authorization": f"Bearer {READ_TOKEN}"}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        self.config_path = workdir / "tocsin.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "tocsin.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.clock_offset = timedelta(0)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout_s: float = 20.0, *, fake_now: datetime | None = None
              ) -> TocsinProcess:
        """Start and wait for ``/readyz``. ``fake_now``: the process's wall clock starts
        there (libfaketime) and runs at the real pace; :meth:`now` reads it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
        self.clock_offset = timedelta(0)
        if fake_now is not None:
            self.clock_offset = fake_now - datetime.now(UTC)
            env.update(faketime_env(self.clock_offset))
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--config", str(self.config_path)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._ready, timeout_s=timeout_s, what="tocsin /readyz")
        except AssertionError:
            self.kill()
            raise AssertionError(f"tocsin did not become ready; log:\n{self.log()}") from None
        return self

    def run_to_exit(self, timeout_s: float = 20.0) -> int:
        """Start and wait for the process to end by itself (a refused start): its status."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "router", "serve", "--config", str(self.config_path)],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"tocsin did not exit; log:\n{self.log()}") from None

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"tocsin exited with {self._proc.returncode}:\n{self.log()}")
        return request("GET", f"{self.url}/readyz", timeout_s=1)[0] == 200

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything (crash simulation)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait: returns the exit status."""
        assert self._proc is not None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        return self._proc.wait(timeout=timeout_s)

    def now(self) -> datetime:
        """The process's wall clock (the real one unless started with ``fake_now``)."""
        return datetime.now(UTC) + self.clock_offset

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def deliveries(self, status: str | None = None) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/deliveries"
        if status:
            url += f"?status={status}"
        code, body = request("GET", url, headers=self.read_headers)
        assert code == 200, (code, body)
        assert isinstance(body, list), body
        return body

    def metric(self, name: str, labels: str = "") -> float | None:
        """Read one sample from ``/metrics`` (``labels`` as rendered, e.g. ``status="sent"``)."""
        code, text = request("GET", f"{self.url}/metrics", headers=self.read_headers)
        assert code == 200, (code, text)
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in str(text).splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def post_webhook(self, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return request("POST", f"{self.url}/webhook/alertmanager", body, headers=headers)
