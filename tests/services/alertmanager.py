"""A real Prometheus Alertmanager process (Debian package), cluster disabled."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .http import request, wait_until
from .ports import free_port
from .requirements import require_binary


def webhook_config(
    url: str,
    *,
    bearer_token: str | None = None,
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    group_by: list[str] | None = None,
) -> str:
    """An Alertmanager config that sends every alert to one webhook."""
    http_config = ""
    if bearer_token:
        http_config = (
            "    http_config:\n"
            "      authorization:\n"
            "        type: Bearer\n"
            f"        credentials: {bearer_token}\n"
        )
    group = ", ".join(group_by or ["alertname"])
    return (
        "route:\n"
        "  receiver: tocsin\n"
        f"  group_by: [{group}]\n"
        f"  group_wait: {group_wait}\n"
        f"  group_interval: {group_interval}\n"
        f"  repeat_interval: {repeat_interval}\n"
        "receivers:\n"
        "- name: tocsin\n"
        "  webhook_configs:\n"
        f"  - url: {url}\n"
        "    send_resolved: true\n"
        f"{http_config}"
    )


class Alertmanager:
    """Start ``prometheus-alertmanager`` on a free port with the given config."""

    def __init__(self, workdir: Path, config_yaml: str) -> None:
        self.binary = require_binary(
            "prometheus-alertmanager",
            "install Debian's prometheus-alertmanager (make test does it as root)",
        )
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(config_yaml)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = workdir / "alertmanager.log"

    def start(self) -> Alertmanager:
        storage = self.workdir / "am-data"
        storage.mkdir(exist_ok=True)
        log = self._log.open("ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: request("GET", f"{self.url}/-/ready")[0] == 200,
            timeout_s=15,
            what="alertmanager ready",
        )
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def post_alert(
        self,
        labels: dict[str, str],
        annotations: dict[str, str] | None = None,
        *,
        resolved: bool = False,
        starts_at: datetime | None = None,
    ) -> None:
        """POST one alert to Alertmanager's v2 API; ``resolved`` sets endsAt in the past."""
        now = datetime.now(UTC)
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations or {},
            "startsAt": (starts_at or now - timedelta(minutes=1)).isoformat(),
        }
        if resolved:
            alert["endsAt"] = (now - timedelta(seconds=1)).isoformat()
        status, body = request("POST", f"{self.url}/api/v2/alerts", [alert])
        assert status == 200, (status, body)
