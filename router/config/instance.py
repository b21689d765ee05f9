"""The ``instance`` section: who this Tocsin process is among several on one store."""

from __future__ import annotations

import os
import re
import socket

from pydantic import Field, field_validator

from router.strict import Strict

__all__ = ["InstanceConfig", "default_instance_id"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def default_instance_id() -> str:
    """``<hostname>-<pid>``: unique per running process (a pod name in Kubernetes)."""
    return f"{socket.gethostname()}-{os.getpid()}"


class InstanceConfig(Strict):
    """The ``instance`` section (``TOCSIN_INSTANCE__ID``, ...).

    ``id``: the name of this instance in the instances table, logs and metrics (default
    ``<hostname>-<pid>``); ``heartbeat_s``: how often it records itself and compares its
    rule set with the others'; ``stale_after_s``: an instance not heard of for that long
    is no longer counted (it stopped or died); ``claim_lease_s``: how long a claim on
    intake rows and due incidents holds, so how long the work of an instance that died
    waits before another instance takes it (deliveries: ``dispatch.lease_s``).
    """

    id: str | None = None
    heartbeat_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=30.0, gt=0)
    claim_lease_s: float = Field(default=60.0, gt=0)

    @field_validator("id")
    @classmethod
    def _id_valid(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("must be 1 to 128 letters, digits or . _ : - (starting with a "
                             "letter or digit), such as the pod name")
        return value

    def resolved_id(self) -> str:
        """The configured id, else :func:`default_instance_id`."""
        return self.id if self.id is not None else default_instance_id()
