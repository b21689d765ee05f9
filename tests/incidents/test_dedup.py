"""The dedup decision as a pure function (Alertmanager's DedupStage.needsUpdate)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.incidents.dedup import NotifiedEntry, needs_notice

NOW = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def entry(firing: set[str], resolved: frozenset[str] = frozenset(),
          ago_s: float = 60) -> NotifiedEntry:
    return NotifiedEntry(frozenset(firing), frozenset(resolved),
                         NOW - timedelta(seconds=ago_s))


def test_never_notified_notifies_only_when_something_fires() -> None:
    """No log entry: a firing set is a first notice; only resolved alerts are not news."""
    assert needs_notice(None, {"a"}, set(), HOUR, NOW) == "first"
    assert needs_notice(None, set(), {"a"}, HOUR, NOW) is None


def test_identical_state_within_repeat_interval_is_a_duplicate() -> None:
    """The same sets again (HA pair, retry, redelivery) before repeat_interval: nothing."""
    assert needs_notice(entry({"a", "b"}), {"a", "b"}, set(), HOUR, NOW) is None
    assert needs_notice(entry({"a", "b"}), {"a"}, set(), HOUR, NOW, send_resolved=False) is None


def test_new_firing_alert_notifies() -> None:
    """A firing alert the recipient was not told about is news."""
    assert needs_notice(entry({"a"}), {"a", "b"}, set(), HOUR, NOW) == "new_firing"


def test_all_resolved_notifies_only_if_something_was_told_firing() -> None:
    """Nothing fires now: tell it if the recipient knew of firing alerts, else stay silent."""
    assert needs_notice(entry({"a"}), set(), {"a"}, HOUR, NOW) == "all_resolved"
    assert needs_notice(entry(set(), {"a"}), set(), {"a", "b"}, HOUR, NOW) is None


def test_newly_resolved_alerts_notify() -> None:
    """Some alerts resolved while others still fire: news (send_resolved)."""
    assert needs_notice(entry({"a", "b"}), {"a"}, {"b"}, HOUR, NOW) == "new_resolved"
    assert needs_notice(entry({"a"}, {"b"}), {"a"}, {"b"}, HOUR, NOW) is None


def test_repeat_interval_strictly_after() -> None:
    """Unchanged state is repeated only once repeat_interval has fully passed."""
    assert needs_notice(entry({"a"}, ago_s=HOUR), {"a"}, set(), HOUR, NOW) is None
    assert needs_notice(entry({"a"}, ago_s=HOUR + 1), {"a"}, set(), HOUR, NOW) == "repeat"
