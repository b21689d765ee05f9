"""Wait until a served Tocsin has finished all the work that could still send something.

"Nothing more arrived" cannot be proved by sleeping (too short under load, and always
slow): these helpers ask the process itself instead. Tocsin is quiescent when, at one
instant, no accepted alert waits in the intake, no delivery is pending (each is sent
or failed), and no open incident has a timer due; the incident snapshot is read before
and after the other checks and must not have moved, so a flush that ran in between
(and may have planned a notice) is seen and waited for.
"""

from __future__ import annotations

from datetime import datetime

from .http import request, wait_until
from .tocsin import TocsinProcess


def _timers(tocsin: TocsinProcess) -> list[tuple[str, str, str | None, str | None]] | None:
    """(id, state, next timer, updated) of every incident; None when one is due now."""
    code, body = request("GET", f"{tocsin.url}/api/v1/incidents?limit=1000")
    assert code == 200, body
    assert isinstance(body, list)
    now = tocsin.now()
    rows = [(i["id"], i["state"], i["next_timer_at"], i["updated_at"]) for i in body]
    for _, state, due, _ in rows:
        if state == "open" and due is not None and _parse(due) <= now:
            return None
    return rows


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def is_quiescent(tocsin: TocsinProcess, *, alerts_accepted: int = 0) -> bool:
    """True when nothing is left to route, send or flush (see the module docstring).

    ``alerts_accepted``: also require that many alerts accepted by the webhook first
    (every notification the senders will make has reached Tocsin).
    """
    accepted = tocsin.metric("tocsin_alerts_received_total",
                             'result="accepted",source="alertmanager"') or 0
    if accepted < alerts_accepted:
        return False
    before = _timers(tocsin)
    if before is None:
        return False
    if tocsin.metric("tocsin_intake_pending") != 0:
        return False
    if tocsin.metric("tocsin_outbox_depth", 'status="pending"') != 0:
        return False
    return _timers(tocsin) == before


def wait_quiescent(tocsin: TocsinProcess, *, alerts_accepted: int = 0,
                   timeout_s: float = 60.0) -> None:
    """Block until :func:`is_quiescent` holds (fail after ``timeout_s``)."""
    wait_until(lambda: is_quiescent(tocsin, alerts_accepted=alerts_accepted),
               timeout_s=timeout_s, interval_s=0.1, what="tocsin quiescent")
