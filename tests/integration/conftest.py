"""Fixtures that start real services for the integration tests and stop them by PID."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.alertmanager import Alertmanager
from tests.services.smtp import SmtpServer
from tests.services.tocsin import TocsinProcess


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def tocsin_factory(tmp_path: Path) -> Iterator[Callable[..., TocsinProcess]]:
    started: list[TocsinProcess] = []

    def make(**kwargs: Any) -> TocsinProcess:
        workdir = kwargs.pop("workdir", tmp_path)
        proc = TocsinProcess(workdir, **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.kill()


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[[str], Alertmanager]]:
    started: list[Alertmanager] = []

    def make(config_yaml: str) -> Alertmanager:
        workdir = tmp_path / f"am{len(started)}"
        workdir.mkdir()
        am = Alertmanager(workdir, config_yaml).start()
        started.append(am)
        return am

    yield make
    for am in started:
        am.stop()
