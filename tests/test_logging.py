"""Logs are JSON lines with event/level/timestamp/logger, personal data masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from router.logging import configure_logging, get_logger, mask_text


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging configured into a buffer for one test, reset afterwards."""
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    yield buffer
    structlog.reset_defaults()
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_has_the_documented_keys(stream: io.StringIO) -> None:
    """A structlog event renders as one JSON object with event, level, UTC timestamp, logger."""
    get_logger("router.test").info("delivery.sent", fingerprint="17d22a1f8acfee82")
    (line,) = _lines(stream)
    assert line["event"] == "delivery.sent"
    assert line["level"] == "info"
    assert line["logger"] == "router.test"
    assert str(line["timestamp"]).endswith("Z")
    assert line["fingerprint"] == "17d22a1f8acfee82"


def test_emails_and_phones_are_masked_as_a_safety_net(stream: io.StringIO) -> None:
    """Addresses that slip into a log line are masked, nested values included."""
    get_logger("router.test").warning(
        "smtp refused", error="550 <alice.martin@example.com>: unknown",
        to=["+33612345678"], extra={"cc": "bob@example.org"},
    )
    (line,) = _lines(stream)
    text = json.dumps(line)
    assert "alice.martin" not in text and "12345" not in text and "bob@" not in text
    assert line["error"] == "550 <a***@e***.com>: unknown"
    assert line["to"] == ["+336******78"]


def test_stdlib_loggers_use_the_same_format(stream: io.StringIO) -> None:
    """aiohttp/asyncio (standard logging) lines come out as the same masked JSON."""
    logging.getLogger("aiohttp.server").error("boom for %s", "carol@example.net")
    (line,) = _lines(stream)
    assert line["event"] == "boom for c***@e***.net"
    assert line["level"] == "error"
    assert line["logger"] == "aiohttp.server"


def test_level_filters(stream: io.StringIO) -> None:
    """Below the configured level nothing is written."""
    get_logger("router.test").debug("noise")
    assert stream.getvalue() == ""


def test_mask_text_leaves_other_text_alone() -> None:
    """Fingerprints, times and versions are not mistaken for phone numbers."""
    text = "fp 17d22a1f8acfee82 at 2026-11-29T05:29:56+01:00 v+4"
    assert mask_text(text) == text
