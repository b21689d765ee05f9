"""Fixtures of the Kafka tests: a real tansu broker per test, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import smtp_server, tocsin_factory
from tests.kafka.broker import Tansu

__all__ = ["smtp_server", "tansu", "tocsin_factory"]


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    broker = Tansu(tmp_path).start()
    yield broker
    broker.stop()
