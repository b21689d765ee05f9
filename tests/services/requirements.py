"""Missing external services fail the run in CI and skip locally.

``TOCSIN_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns a missing binary into a test
failure, so that CI can never go green by skipping the tests that matter.
"""

from __future__ import annotations

import os
import shutil

import pytest


def services_required() -> bool:
    return os.environ.get("TOCSIN_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def require_binary(name: str, hint: str) -> str:
    """Return the path of ``name`` or fail (CI) / skip (locally) with ``hint``."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: {hint}"
    if services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
