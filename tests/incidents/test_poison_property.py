"""Property: whatever one alert carries (annotations, labels, times), the healthy
incidents around it are still notified (intake → flush → render, real SQLite store)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router.clock import FakeClock
from router.fingerprint import fingerprint
from router.models import Alert, IntakeRecord
from router.store import SqliteStore
from tests.incidents.harness import RULES, T_MON_10, Harness, load

# A template that reads the untrusted values through every helper: eta, duration, date.
TEMPLATE_RULES = RULES.replace(
    'text: "{{ incident.instances | join(\',\') }} {{ incident.duration_s | duration }}"',
    'text: "{{ incident.eta | date if incident.eta else \'\' }}'
    ' {{ alert.annotations.maintenance_start | date }} {{ alert.starts_at | date }}'
    ' {{ incident.duration_s | duration }} {{ incident.started_at | date(\'%Y\') }}"')

_DURATION = st.builds(lambda n, unit: f"{n}{unit}", st.integers(0, 10**12),
                      st.sampled_from(["ms", "s", "m", "h", "d", "w", "y"]))
_TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                      timezones=st.just(UTC))
_TEXT = st.one_of(
    _DURATION, _TIMES.map(lambda t: t.isoformat().replace("+00:00", "Z")),
    st.text(max_size=30), st.sampled_from(["tomorrow 10:00", "9999-12-31T23:59:59+14:00",
                                           "0001-01-01T00:00:00-12:00", "1e309", "nan"]))
_KEYS = st.sampled_from(["eta", "maintenance_start", "fix", "temporary_fix", "owner",
                         "summary"])


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(annotations=st.dictionaries(_KEYS, _TEXT, max_size=4),
       labels=st.dictionaries(st.sampled_from(["instance", "service", "owner", "severity"]),
                              st.text(max_size=20), max_size=3),
       starts_at=st.one_of(st.just(datetime(9999, 12, 31, 23, tzinfo=UTC)), _TIMES),
       ends_at=st.one_of(st.none(), _TIMES))
# The two reproducers, always tried first.
@example(annotations={"eta": "999999999d"}, labels={"severity": "warning"},
         starts_at=T_MON_10, ends_at=None)
@example(annotations={"eta": "2h"}, labels={}, starts_at=datetime(9999, 12, 31, 23, tzinfo=UTC),
         ends_at=None)
@example(annotations={"maintenance_start": "tomorrow 10:00"}, labels={}, starts_at=T_MON_10,
         ends_at=None)
def test_one_poisoned_alert_never_stops_the_healthy_incidents(
    annotations: dict[str, str], labels: dict[str, str], starts_at: datetime,
    ends_at: datetime | None,
) -> None:
    """A random alert between two healthy ones: both healthy incidents get a pending
    e-mail per ops contact, and the random one never breaks the pass."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteStore(str(Path(tmp) / "tocsin.db"))
            await store.start()
            try:
                h = Harness(store, load(Path(tmp), TEMPLATE_RULES), FakeClock(T_MON_10))
                poison_labels = {**labels, "alertname": "Poison"}
                poison = Alert(labels=poison_labels, annotations=annotations,
                               status="firing", starts_at=starts_at, ends_at=ends_at,
                               generator_url="", fingerprint=fingerprint(poison_labels))
                healthy = [Alert(labels={"alertname": name}, annotations={},
                                 status="firing", starts_at=T_MON_10, ends_at=None,
                                 generator_url="", fingerprint=fingerprint({"alertname": name}))
                           for name in ("Before", "After")]
                for alert in (healthy[0], poison, healthy[1]):
                    await store.append_intake([IntakeRecord(
                        source="alertmanager", received_at=h.clock.now(), alert=alert,
                        meta={})])
                    h.clock.advance(1)
                while await h.processor.process_once():
                    pass
                sent = await h.tick(60)
                told = {(d.message.subject.split()[1], d.contact_id) for d in sent
                        if d.status == "pending"}
                assert {("Before", "alice"), ("Before", "bob"), ("After", "alice"),
                        ("After", "bob")} <= told
                h.clock.advance(timedelta(hours=2).total_seconds())
                await h.tick(0)  # follow-ups, repeats: still no exception out of a pass
            finally:
                await store.close()

    _run(scenario())
