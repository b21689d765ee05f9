"""Storm control: above N new incidents per audience in a window, one summary instead."""

from __future__ import annotations

from pathlib import Path

from router.clock import FakeClock
from router.store import SqliteStore
from tests.incidents.harness import RULES, T_MON_10, Harness, load, make_alert

STORM_RULES = RULES + """
storm_control:
  max_incidents: 2
  window: 10m
"""


async def test_beyond_the_threshold_one_storm_summary(tmp_path: Path,
                                                      store: SqliteStore) -> None:
    """4 incidents, threshold 2: two first notices, then one storm summary per recipient."""
    h = Harness(store, load(tmp_path, STORM_RULES), FakeClock(T_MON_10))
    for name in ("A", "B", "C", "D"):
        await h.receive(make_alert(name, starts_at=T_MON_10))
    planned = await h.tick(30)
    firing = sorted({d.message.subject for d in planned if d.phase == "firing"})
    assert firing == ["firing A 1/1", "firing B 1/1"]
    assert len(planned) == 4  # 2 incidents × 2 recipients
    assert len(await h.store.list_incidents(state="open")) == 4  # every incident visible
    storm = await h.tick(600)
    assert sorted(d.contact_id for d in storm) == ["alice", "bob"]
    assert {d.phase for d in storm} == {"storm"}
    assert await h.tick(600) == []  # sent once
    # Folded incidents still end with a resolved notice to those told in the summary.
    await h.receive(make_alert("C", starts_at=T_MON_10, status="resolved",
                               ends_at=h.clock.now()))
    resolved = await h.tick(300)
    assert [(d.phase, d.message.subject) for d in resolved][:1] == [("resolved",
                                                                     "resolved C 0/1")]
