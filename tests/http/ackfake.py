"""An in-test :class:`router.acks.Acknowledger` that records its calls (the seam's twin)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from router.acks import AckBy, AckResult, PendingAck
from router.acks.contract import AckChannel


@dataclass
class RecordingAcknowledger:
    """First call on an open incident acknowledges it, later ones answer ``already``.

    ``states`` maps an incident id to ``open``, ``resolved`` or ``not_asked``; an id it
    does not name is ``not_found``. ``calls`` lists every acknowledge call.
    """

    states: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, AckBy, str, datetime]] = field(default_factory=list)
    done: dict[str, AckResult] = field(default_factory=dict)

    async def pending_for(self, channel: str, address: str, now: datetime) -> list[PendingAck]:
        return []

    async def acknowledge(self, incident_id: str, *, by: AckBy, channel: AckChannel,
                          at: datetime) -> AckResult:
        self.calls.append((incident_id, by, channel, at))
        state = self.states.get(incident_id)
        if state is None:
            return AckResult("not_found", incident_id)
        if state in ("resolved", "not_asked"):
            return AckResult(state, incident_id)  # type: ignore[arg-type]
        first = self.done.get(incident_id)
        if first is not None:
            return AckResult("already", incident_id, first.acknowledged_by,
                             first.acknowledged_at, first.ack_channel)
        result = AckResult("acknowledged", incident_id, by, at, channel)
        self.done[incident_id] = result
        return result

    async def record_opt_out(self, phone: str, keyword: str, at: datetime) -> list[str]:
        return []

    async def send_reply(self, phone: str, text: str, at: datetime) -> None:
        return None
