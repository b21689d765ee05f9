"""The one base of every model a person writes (service config, rule files, rule tests).

Strict: an unknown key is an error (``extra="forbid"``), never silently ignored, and a
loaded model is immutable (``frozen``). Inbound payloads (webhooks, Kafka messages) are
parsed leniently by their adapters and do not use it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    """A pydantic model that forbids unknown keys and is frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
