"""A shifted wall clock for a served Tocsin process (libfaketime, Debian ``faketime``).

Only the process started with :func:`faketime_env` sees the shifted clock: the test
process, the SMTP server and Alertmanager keep the real one. The offset is relative
(``FAKETIME=+Ns``), so the shifted clock runs at the real pace from where it was set;
the monotonic clock is left alone (timers and timeouts keep their real durations).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from .requirements import services_required

#: Where Debian's ``libfaketime`` package installs the preload library.
LIBRARY_PATHS = (
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/faketime/libfaketime.so.1"),
)


def libfaketime() -> Path:
    """The preload library, or fail (CI) / skip (locally) with an install hint."""
    for path in LIBRARY_PATHS:
        if path.exists():
            return path
    message = "libfaketime not found: install the Debian package faketime (deploy/system-deps.sh)"
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def faketime_env(offset: timedelta) -> dict[str, str]:
    """Environment that runs a child process with its wall clock ``offset`` from the real one."""
    preload = str(libfaketime())
    if os.environ.get("LD_PRELOAD"):
        preload += ":" + os.environ["LD_PRELOAD"]
    return {
        "LD_PRELOAD": preload,
        "FAKETIME": f"{offset.total_seconds():+.3f}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
    }
