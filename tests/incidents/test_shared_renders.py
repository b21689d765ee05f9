"""Recipients who would see the same message share one render; nobody gets another's."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.clock import FakeClock
from router.models import Contact
from router.rules.templates import recipient_reads
from router.rules.view import AckView
from router.store import Store
from tests.incidents.harness import RULES, T_MON_10, Harness, load, make_alert


@pytest.mark.parametrize(("source", "reads"), [
    ("{{ alert.labels.alertname }} {{ incident.count }}", frozenset()),
    ("Hello {{ recipient.name }}", frozenset({"name"})),
    ("{{ recipient['id'] }} {{ recipient.locale }} {{ recipient.timezone }}",
     frozenset({"id"})),
    ("{{ incident.started_at | date }}", frozenset()),  # keyed on the time zone anyway
    ("{% if ack.requested %}{{ ack.url }}{% endif %}", frozenset({"ack"})),
    ("{% set who = recipient %}{{ who.name }}", None),
    ("{{ recipient | string }}", None),
    ("{{ recipient[alert.labels.field] }}", None),
    ("{{ ['a', 'b'] | random }}", None),
    ("{{ lipsum(1) }}", None),
    ("{% include 'other' %}", None),
])
def test_what_a_template_reads_of_its_recipient(source: str,
                                               reads: frozenset[str] | None) -> None:
    assert recipient_reads(source, None) == reads


_PERSONAL = RULES.replace(
    """text: "{{ incident.instances | join(',') }} {{ incident.duration_s | duration }}\"""",
    """text: "Hello {{ recipient.name }}, since {{ incident.started_at | date }}\"""")
_PEOPLE = """
      - {id: alice, name: Alice, email: alice@example.com}
      - {id: bob, name: Bob, email: bob@example.com, timezone: Europe/Paris}
      - {id: ann, name: Alice, email: ann@example.com}
      - {id: eve, name: Eve, email: eve@example.com}"""


def _rules(text: str) -> str:
    return text.replace("""
      - {id: alice, name: Alice, email: alice@example.com}
      - {id: bob, name: Bob, email: bob@example.com, timezone: Europe/Paris}""", _PEOPLE, 1)


async def test_a_template_greeting_by_name_gives_each_recipient_their_name(
        tmp_path: Path, store: Store) -> None:
    h = Harness(store, load(tmp_path, _rules(_PERSONAL)), FakeClock(T_MON_10))
    await h.receive(make_alert("DiskFull", starts_at=h.clock.now()))
    planned = await h.tick(30)
    texts = {d.contact_id: d.message.text for d in planned}
    assert texts["alice"].startswith("Hello Alice, since 6 May 2024 10:00 UTC")
    assert texts["ann"] == texts["alice"]  # same name, same zone: the same message
    assert texts["bob"].startswith("Hello Bob, since 6 May 2024 12:00 Europe/Paris")
    assert texts["eve"].startswith("Hello Eve,")


async def test_a_shared_template_renders_once_per_zone(tmp_path: Path) -> None:
    rules = load(tmp_path, _rules(RULES.replace(
        """text: "{{ incident.instances | join(',') }} {{ incident.duration_s | duration }}\"""",
        """text: "since {{ incident.started_at | date }}\"""")))
    decision = rules.evaluate({"alertname": "DiskFull"})[0]
    alert = make_alert("DiskFull", starts_at=T_MON_10)
    meta: dict[str, str] = {}
    contacts = list(rules.audiences["ops"].contacts)
    texts = [rules.render(decision, alert, c, "email", "firing", meta).text for c in contacts]
    assert texts[0] == texts[2] == texts[3] != texts[1]  # bob is in Paris
    cache = rules._renders
    assert (cache.misses, cache.hits) == (2, 2)
    # Another alert object (another flush): rendered again, never another flush's text.
    other = make_alert("DiskFull", starts_at=T_MON_10.replace(hour=11))
    assert rules.render(decision, other, contacts[0], "email", "firing", meta).text \
        != texts[0]


async def test_the_ack_field_is_keyed_by_value(tmp_path: Path) -> None:
    rules = load(tmp_path, _rules(RULES.replace(
        """text: "{{ incident.instances | join(',') }} {{ incident.duration_s | duration }}\"""",
        """text: "{{ ack.url or 'none' }}\"""")))
    decision = rules.evaluate({"alertname": "DiskFull"})[0]
    alert = make_alert("DiskFull", starts_at=T_MON_10)
    meta: dict[str, str] = {}
    alice = Contact(id="alice", name="Alice", email="a@example.com")
    first = rules.render(decision, alert, alice, "email", "firing", meta,
                         ack=AckView(code="K1", requested=True, url="https://x/1"))
    second = rules.render(decision, alert, alice, "email", "firing", meta,
                          ack=AckView(code="K1", requested=True, url="https://x/2"))
    assert (first.text, second.text) == ("https://x/1\n", "https://x/2\n")
