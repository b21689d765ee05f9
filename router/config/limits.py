"""The ``memory`` and ``templates`` sections: bounds on memory and on message renders."""

from __future__ import annotations

from pydantic import Field

from router.bytecache import DEFAULT_CACHE_BYTES
from router.strict import Strict

__all__ = ["MemoryConfig", "TemplatesConfig"]


class MemoryConfig(Strict):
    """Bounds on what the service keeps in memory (router/bytecache.py)."""

    # All caches keyed by alert content together (fingerprints, routing verdicts,
    # accepted alerts awaiting routing), in bytes of labels and annotations kept.
    cache_bytes: int = Field(default=DEFAULT_CACHE_BYTES, ge=0)


class TemplatesConfig(Strict):
    """The budget of one message render (router/rules/templates.py)."""

    render_budget_s: float = Field(default=1.0, gt=0, le=60)
    max_output_chars: int = Field(default=256 * 1024, ge=1024)
    # A flush rendering more messages than this renders in a worker thread (0: always).
    offload_renders: int = Field(default=32, ge=0)
