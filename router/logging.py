"""Logging: structlog JSON lines (or a console renderer), with personal data masked.

Every line carries ``event``, ``level``, ``timestamp`` (ISO 8601, UTC) and ``logger``.
Standard-library loggers (aiohttp, asyncio) are routed through the same processors, so
the process writes one format only. :func:`mask_personal_data` is a safety net: code
should never log an address in clear, but if it does, e-mail addresses and E.164 phone
numbers in string values are masked with :mod:`router.masking` before rendering.

Logs go to stderr by default, so that CLI output on stdout stays clean.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO, cast

import structlog
from structlog.typing import FilteringBoundLogger

from router.masking import mask_email, mask_phone

__all__ = ["configure_logging", "get_logger", "mask_personal_data", "mask_text"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_PHONE = re.compile(r"(?<![\w+])\+[1-9]\d{6,14}\b")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def mask_text(text: str) -> str:
    """Mask every e-mail address and ``+``-prefixed phone number found in ``text``."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    if "+" in text:
        text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_personal_data(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask e-mails and phone numbers in every string value."""
    for key, value in event_dict.items():
        event_dict[key] = _mask_value(value)
    return event_dict


def configure_logging(
    level: str = "info", fmt: str = "json", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard ``logging`` module for the whole process.

    ``level`` is debug|info|warning|error; ``fmt`` is ``json`` (one JSON object per line)
    or ``console`` (coloured, for a terminal). Safe to call more than once.
    """
    out = stream if stream is not None else sys.stderr
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            *shared,
            _rename_logger_name,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name,
                               structlog.processors.format_exc_info],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                mask_personal_data,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name``."""
    # ``logger`` itself cannot be passed: it is a parameter name of structlog.get_logger.
    return cast(FilteringBoundLogger, structlog.get_logger(logger_name=name))


def _rename_logger_name(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    name = event_dict.pop("logger_name", None)
    if name is not None:
        event_dict["logger"] = name
    return event_dict
