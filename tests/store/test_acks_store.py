"""The store's part of acknowledgements on every implementation: the history filtered by
incident and phase, the acknowledgement phases, SMS opt-outs.

The answers themselves (``acknowledge_incident``, ``pending_acks``) are exercised with
real incidents by tests/incidents/test_acks.py, on every store too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from router.models import NewDelivery, Phase, Receipt
from router.store import Store
from tests.store.factories import T0, make_delivery


def _delivery(key: str, incident: str, phase: Phase) -> NewDelivery:
    return replace(make_delivery(key), incident_key=incident, phase=phase)


async def test_deliveries_filtered_by_incident_phase_and_status(store: Store) -> None:
    """Every combination of the filters, newest first; the acknowledgement phases are
    stored like the others; an unknown phase or status is refused."""
    planned = [_delivery("a1", "inc-a", "firing"), _delivery("a2", "inc-a", "reminder"),
               _delivery("a3", "inc-a", "acknowledged"), _delivery("b1", "inc-b", "firing"),
               _delivery("b2", "inc-b", "escalation"), _delivery("b3", "inc-b", "reply")]
    assert await store.commit_plan([], planned, now=T0, deadline_s=600) == 6
    keys = {d.idempotency_key: d.id for d in await store.list_deliveries()}
    await store.claim_due(T0, 10, 60)
    await store.mark_sent(keys["a2"], T0, Receipt(provider_id="p"))

    async def listed(**filters: Any) -> list[str]:
        return [d.idempotency_key for d in await store.list_deliveries(**filters)]

    assert await listed() == ["b3", "b2", "b1", "a3", "a2", "a1"]
    assert await listed(incident="inc-a") == ["a3", "a2", "a1"]
    assert await listed(phase="firing") == ["b1", "a1"]
    assert await listed(incident="inc-b", phase="escalation") == ["b2"]
    assert await listed(status="sent") == ["a2"]
    assert await listed(status="sent", incident="inc-b") == []
    assert await listed(status="pending", incident="inc-a", phase="acknowledged") == ["a3"]
    assert await listed(status="pending", phase="reminder") == []
    assert await listed(incident="nope") == []
    assert [d.phase for d in await store.list_deliveries(incident="inc-b", limit=1,
                                                         offset=1)] == ["escalation"]
    with pytest.raises(ValueError, match="unknown delivery phase"):
        await store.list_deliveries(phase="paged")
    with pytest.raises(ValueError, match="unknown delivery status"):
        await store.list_deliveries(status="bogus")


async def test_opt_outs_newest_first_by_phone(store: Store) -> None:
    """Opt-outs are kept (a phone may stop twice), newest first, per phone or all."""
    await store.record_opt_out("+33600000001", "STOP", at=T0)
    await store.record_opt_out("+33600000002", "ARRET", at=T0 + timedelta(seconds=1))
    await store.record_opt_out("+33600000001", "UNSUBSCRIBE", at=T0 + timedelta(seconds=2))
    assert [(o.phone, o.keyword) for o in await store.opt_outs()] == [
        ("+33600000001", "UNSUBSCRIBE"), ("+33600000002", "ARRET"), ("+33600000001", "STOP")]
    mine = await store.opt_outs("+33600000001")
    assert [(o.keyword, o.at) for o in mine] == [
        ("UNSUBSCRIBE", T0 + timedelta(seconds=2)), ("STOP", T0)]
    assert [o.keyword for o in await store.opt_outs(limit=1)] == ["UNSUBSCRIBE"]
    assert await store.opt_outs("+33699999999") == []


async def test_no_contact_waits_for_nothing(store: Store) -> None:
    """No request at all: nothing waits, whoever asks (and asking for no contact)."""
    assert await store.pending_acks([]) == []
    assert await store.pending_acks(["alice"]) == []
