"""Quiet hours in the incident flow: held (never dropped), collapsed, restart-safe."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from router.clock import FakeClock
from router.store import SqliteStore
from tests.incidents.harness import RULES, T_SUN_0030, Harness, load, make_alert

MONDAY_8_PARIS = datetime.fromisoformat("2024-05-06T06:00:00+00:00")


def customers(severity: str = "warning", **kw: object) -> dict[str, object]:
    return {"audience": "customers", "severity": severity, **kw}


async def at_sunday(h: Harness) -> Harness:
    h.clock.set(T_SUN_0030)
    return h


async def test_warning_at_night_is_held_until_the_window_ends(h: Harness) -> None:
    """Sunday 02:30 Paris: carol's notice waits for Monday 08:00; dave (none) gets it now."""
    await at_sunday(h)
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, **customers()))
    planned = {d.contact_id: d for d in await h.tick(30)}
    assert set(planned) == {"carol", "dave"}
    assert planned["carol"].next_attempt_at == MONDAY_8_PARIS
    assert planned["dave"].next_attempt_at == T_SUN_0030 + timedelta(seconds=30)
    due_now = await h.store.claim_due(h.clock.now(), 10, 3 * 86400)
    assert [d.contact_id for d in due_now] == ["dave"]
    assert [d.contact_id for d in await h.store.claim_due(MONDAY_8_PARIS, 10, 60)] == ["carol"]


async def test_critical_breaks_quiet_hours(h: Harness) -> None:
    """A critical notice goes out at once, quiet hours or not (break_quiet_hours default)."""
    await at_sunday(h)
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, **customers("critical")))
    planned = await h.tick(30)
    assert {d.next_attempt_at for d in planned} == {h.clock.now()}


async def test_resolved_while_held_becomes_one_summary(h: Harness) -> None:
    """Resolved during the hold: carol's held first notice is replaced by one summary;
    dave, whose first notice was sent, gets the resolved notice."""
    h.send = True
    await at_sunday(h)
    alert = make_alert("DiskWillFill", starts_at=T_SUN_0030, **customers())
    await h.receive(alert)
    await h.tick(30)
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, status="resolved",
                               ends_at=T_SUN_0030 + timedelta(hours=1), **customers()))
    planned = {d.contact_id: d for d in await h.tick(3600)}
    assert planned["carol"].phase == "summary"
    assert planned["carol"].next_attempt_at == MONDAY_8_PARIS
    assert planned["dave"].phase == "resolved"
    carol = [d for d in await h.deliveries() if d.contact_id == "carol"]
    assert [(d.phase, d.status) for d in carol] == [("firing", "cancelled"),
                                                    ("summary", "pending")]


async def test_drop_means_nothing_after_a_held_incident(tmp_path: Path,
                                                        store: SqliteStore) -> None:
    """on_resolved_during_quiet_hours: drop — a held incident that ended sends nothing."""
    rules = load(tmp_path, RULES.replace("      follow_up_after: 1h",
                                         "      follow_up_after: 1h\n"
                                         "      on_resolved_during_quiet_hours: drop"))
    h = Harness(store, rules, FakeClock(T_SUN_0030))
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, **customers()))
    await h.tick(30)
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, status="resolved",
                               ends_at=T_SUN_0030 + timedelta(hours=1), **customers()))
    planned = await h.tick(3600)
    assert [d.contact_id for d in planned] == ["dave"]
    carol = [d for d in await h.deliveries() if d.contact_id == "carol"]
    assert [d.status for d in carol] == ["cancelled"]


async def test_restart_during_a_deferral_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """A new process over the same database sends the held notice once at the window end."""
    path = str(tmp_path / "state.db")
    rules = load(tmp_path)
    first = SqliteStore(path)
    await first.start()
    h = Harness(first, rules, FakeClock(T_SUN_0030))
    await h.receive(make_alert("DiskWillFill", starts_at=T_SUN_0030, **customers()))
    await h.tick(30)
    await first.close()  # the process dies with carol's notice held

    second = SqliteStore(path)
    await second.start()
    try:
        h2 = Harness(second, rules, FakeClock(T_SUN_0030 + timedelta(minutes=5)))
        assert await h2.tick(0) == []  # nothing re-planned after the restart
        held = [d for d in await h2.deliveries() if d.contact_id == "carol"]
        assert [(d.status, d.next_attempt_at) for d in held] == [("pending", MONDAY_8_PARIS)]
        early = await second.claim_due(MONDAY_8_PARIS - timedelta(seconds=1), 10, 3 * 86400)
        assert [d.contact_id for d in early] == ["dave"]  # dave has no quiet hours
        assert [d.contact_id for d in await second.claim_due(MONDAY_8_PARIS, 10, 60)] == [
            "carol"]
    finally:
        await second.close()


async def test_restart_during_group_wait_notifies_once(tmp_path: Path) -> None:
    """The group_wait timer is a row: after a restart it fires once, at its time."""
    path = str(tmp_path / "state.db")
    rules = load(tmp_path)
    start = datetime.fromisoformat("2024-05-06T10:00:00+00:00")
    first = SqliteStore(path)
    await first.start()
    h = Harness(first, rules, FakeClock(start))
    await h.receive(make_alert("HostDown", instance="a", starts_at=start))
    assert await h.tick(10) == []
    await first.close()

    second = SqliteStore(path)
    await second.start()
    try:
        h2 = Harness(second, rules, FakeClock(start + timedelta(seconds=10)))
        assert await h2.tick(19) == []
        assert len(await h2.tick(1)) == 2
        assert await h2.tick(3600) == []
    finally:
        await second.close()
