"""An incident's life through the real store, intake processor and scheduler (fake clock)."""

from __future__ import annotations

from datetime import timedelta

from tests.incidents.harness import T_MON_10, Harness, make_alert

START = T_MON_10 - timedelta(minutes=2)


async def test_group_wait_then_one_first_notice_per_recipient(h: Harness) -> None:
    """Alerts of one group wait group_wait, then make ONE first notice per recipient."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    await h.receive(make_alert("HostDown", instance="b", starts_at=START))
    assert await h.tick(29) == []
    planned = await h.tick(1)
    assert sorted(d.recipient for d in planned) == ["alice@example.com", "bob@example.com"]
    assert {d.phase for d in planned} == {"firing"}
    assert planned[0].message.subject == "firing HostDown 2/2"
    assert planned[0].message.text.strip() == "a,b 2 min"
    assert len({d.incident_key for d in planned}) == 1


async def test_duplicates_from_two_senders_notify_once(h: Harness) -> None:
    """The same alert state from an HA pair (or a retry) never notifies twice."""
    alert = make_alert("HostDown", instance="a", starts_at=START)
    await h.receive(alert, sender="http://am-1:9093")
    await h.receive(alert, sender="http://am-2:9093")
    assert len(await h.tick(30)) == 2
    await h.receive(alert, sender="http://am-2:9093")
    assert await h.tick(301) == []
    [summary] = await h.store.list_incidents()
    detail = await h.store.get_incident(summary.id)
    assert detail is not None
    dups = [e for e in detail.events if e.kind == "duplicate"]
    assert len(dups) == 2
    assert "HA replica" in dups[0].detail["why"]


async def test_changes_wait_group_interval_then_update(h: Harness) -> None:
    """A new alert in a notified incident is told at the next group_interval tick."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    await h.tick(30)
    await h.receive(make_alert("HostDown", instance="b", starts_at=START))
    assert await h.tick(60) == []
    update = await h.tick(240)
    assert {d.phase for d in update} == {"update"}
    assert update[0].message.subject == "update HostDown 2/2"


async def test_resolved_goes_to_everyone_told_on_same_channels(h: Harness) -> None:
    """When every alert resolves, each recipient of the first notice (sent) gets the
    resolved one."""
    h.send = True
    firing = make_alert("HostDown", instance="a", starts_at=START)
    await h.receive(firing)
    first = await h.tick(30)
    await h.receive(make_alert("HostDown", instance="a", starts_at=START, status="resolved",
                               ends_at=T_MON_10 + timedelta(minutes=3)))
    resolved = await h.tick(300)
    assert {d.phase for d in resolved} == {"resolved"}
    assert sorted((d.recipient, d.channel) for d in resolved) == sorted(
        (d.recipient, d.channel) for d in first)
    [summary] = await h.store.list_incidents(state="resolved")
    assert summary.resolved_at == T_MON_10 + timedelta(minutes=3)
    assert await h.tick(86400) == []  # resolved: no timer left


async def test_repeat_interval_reminds_when_nothing_changed(h: Harness) -> None:
    """Nothing new for repeat_interval: one reminder (phase update), not before."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    await h.tick(30)
    assert await h.tick(4 * 3600 - 60) == []
    reminder = await h.tick(120)
    assert {d.phase for d in reminder} == {"update"}


async def test_inhibited_alert_is_recorded_not_notified(h: Harness) -> None:
    """A critical ServiceDown inhibits HighLatency of the same service (recorded, silent)."""
    await h.receive(make_alert("ServiceDown", service="pay", severity="critical",
                               starts_at=START))
    await h.receive(make_alert("HighLatency", service="pay", starts_at=START))
    await h.receive(make_alert("HighLatency", service="other", starts_at=START))
    planned = await h.tick(30)
    subjects = sorted({d.message.subject for d in planned})
    assert subjects == ["firing HighLatency 1/1", "firing ServiceDown 1/1"]
    incidents = await h.store.list_incidents(limit=10)
    latency = [i for i in incidents if i.group_labels == {"alertname": "HighLatency"}]
    detail = await h.store.get_incident(latency[0].id)
    assert detail is not None
    inhibited = [a for a in detail.alerts if a.inhibited]
    assert [a.labels["service"] for a in inhibited] == ["pay"]
    assert any(e.kind == "alert_inhibited" for e in detail.events)


async def test_muted_route_sends_nothing_but_keeps_the_incident(h: Harness) -> None:
    """A route inside its mute interval plans nothing; the incident is still recorded."""
    await h.receive(make_alert("Muted", starts_at=START))
    assert await h.tick(30) == []
    [incident] = await h.store.list_incidents()
    detail = await h.store.get_incident(incident.id)
    assert detail is not None and any(e.kind == "muted" for e in detail.events)


async def test_follow_up_when_it_lasts_longer_than_announced(h: Harness) -> None:
    """follow_up_after: a follow-up after 1h, another after 2h, then max_follow_ups stops."""
    await h.receive(make_alert("PaymentsDown", audience="customers", severity="critical",
                               starts_at=T_MON_10))
    first = await h.tick(30)
    assert {d.phase for d in first} == {"firing"}
    assert await h.tick(3600 - 60) == []
    follow = await h.tick(60)
    assert {d.phase for d in follow} == {"follow_up"}
    assert len(follow) == 2
    assert {d.phase for d in await h.tick(3600)} == {"follow_up"}
    later = await h.tick(3600)
    assert "follow_up" not in {d.phase for d in later}


async def test_eta_annotation_sets_the_first_follow_up(h: Harness) -> None:
    """An `eta` annotation (duration after the start) is when the follow-up goes out."""
    await h.receive(make_alert("PaymentsDown", audience="customers", severity="critical",
                               starts_at=T_MON_10, annotations={"eta": "20m"}))
    await h.tick(30)
    assert await h.tick(20 * 60 - 60) == []
    assert {d.phase for d in await h.tick(60)} == {"follow_up"}


async def test_a_new_incident_after_resolution(h: Harness) -> None:
    """The same group firing again after it resolved opens a new incident with a new id."""
    await h.receive(make_alert("HostDown", instance="a", starts_at=START))
    await h.tick(30)
    await h.receive(make_alert("HostDown", instance="a", starts_at=START, status="resolved",
                               ends_at=T_MON_10))
    await h.tick(300)
    await h.receive(make_alert("HostDown", instance="a", starts_at=T_MON_10 + timedelta(hours=1)))
    planned = await h.tick(30)
    assert {d.phase for d in planned} == {"firing"}
    ids = [i.id for i in await h.store.list_incidents()]
    assert len(ids) == len(set(ids)) == 2
