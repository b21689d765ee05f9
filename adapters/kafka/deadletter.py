"""The dead-letter topic: where undecodable or invalid Kafka messages go, never lost.

A dead letter keeps the original key, value and headers byte for byte and adds headers
that say where it came from and why it was refused:

``tocsin-dlq-topic``, ``tocsin-dlq-partition``, ``tocsin-dlq-offset``,
``tocsin-dlq-timestamp`` (ms), ``tocsin-dlq-reason`` (short, e.g. ``malformed_json``)
and ``tocsin-dlq-error`` (the problem in words, at most 1 KiB).

:class:`DeadLetterSink` is the seam the consumer uses; :class:`ProducerDeadLetters` is the
real one (aiokafka producer, acks=all, bounded wait). A failed produce raises
:class:`DeadLetterError`: the consumer then holds the partition at that offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from router.errors import DeadLetterError

__all__ = [
    "HEADER_PREFIX",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterSink",
    "ProducerDeadLetters",
    "dead_letter_headers",
]

HEADER_PREFIX: Final = "tocsin-dlq-"
_MAX_ERROR_BYTES: Final = 1024


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused message and why."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    reason: str
    error: str


class DeadLetterSink(Protocol):
    """Where the consumer sends dead letters; returns once they are acknowledged."""

    async def send(self, letter: DeadLetter) -> None:
        """Publish ``letter``; raise DeadLetterError when it was not acknowledged."""
        ...


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers followed by the ``tocsin-dlq-*`` ones."""
    error = letter.error.encode("utf-8")[:_MAX_ERROR_BYTES]
    added = [
        ("topic", letter.topic.encode("utf-8")),
        ("partition", str(letter.partition).encode()),
        ("offset", str(letter.offset).encode()),
        ("timestamp", str(letter.timestamp_ms if letter.timestamp_ms is not None else "").encode()),
        ("reason", letter.reason.encode("utf-8")),
        ("error", error),
    ]
    original = [(name, value) for name, value in letter.headers
                if not name.startswith(HEADER_PREFIX)]
    return original + [(HEADER_PREFIX + name, value) for name, value in added]


class ProducerDeadLetters:
    """:class:`DeadLetterSink` on an aiokafka producer (started and stopped by the owner)."""

    def __init__(self, producer: Any, topic: str, *, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    async def send(self, letter: DeadLetter) -> None:
        """Publish and wait for the broker's acknowledgement (bounded by ``timeout_s``)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._producer.send_and_wait(
                    self._topic,
                    value=letter.value,
                    key=letter.key,
                    headers=dead_letter_headers(letter),
                )
        except TimeoutError:
            raise DeadLetterError(
                f"dead-letter topic {self._topic!r}: no acknowledgement within "
                f"{self._timeout_s:g}s"
            ) from None
        except KafkaError as exc:
            raise DeadLetterError(f"dead-letter topic {self._topic!r}: {exc!r}") from exc
