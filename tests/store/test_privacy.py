"""Forgetting a contact: its personal data erased from the store, the history kept masked
(on every store implementation)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

from router.errors import StoreError
from router.masking import mask_name
from router.models import NewDelivery
from router.store import Store
from router.store.erasure import ERASED, FORGOTTEN_REASON, erased_event_detail
from tests.store.factories import T0, make_delivery
from tests.store.impls import RawDb
from tests.store.test_subscriptions import AUTH, P256DH

EMAIL = "alice.martin@example.com"
PHONE = "+33612345678"


def of(contact: str, delivery: NewDelivery) -> NewDelivery:
    """``delivery`` for ``contact``."""
    return replace(delivery, contact_id=contact)


async def seed(store: Store, db: RawDb) -> None:
    """Alice (``ops``): an e-mail sent, an SMS pending with a planned e-mail fallback,
    a push subscription, a notification log and an acknowledgement event; Bob (``dev``):
    an e-mail and a subscription that must stay as they are."""
    fallback = of("ops", make_delivery("k-sms-fb", recipient=EMAIL))
    await store.commit_plan([], [
        of("ops", make_delivery("k-mail", recipient=EMAIL)),
        replace(of("ops", make_delivery("k-sms", recipient=PHONE, channel="sms")),
                fallback=fallback),
        of("dev", make_delivery("k-bob", recipient="bob@example.com")),
    ], now=T0, deadline_s=3600)
    sent = next(d for d in await store.list_deliveries() if d.idempotency_key == "k-mail")
    await store.mark_failed(sent.id, T0, f"550 {EMAIL}: mailbox unavailable")
    await store.add_push_subscription("ops", "https://push.example/alice", P256DH, AUTH,
                                      now=T0)
    await store.add_push_subscription("dev", "https://push.example/bob", P256DH, AUTH,
                                      now=T0)
    for contact, channels in (("ops", [["email", EMAIL, "fr"], ["sms", PHONE, "fr"]]),
                              ("dev", [["email", "bob@example.com", "en"]])):
        db.execute(
            "INSERT INTO incident_recipients (incident_id, audience, contact_id, firing,"
            " resolved, notified_at, seq, channels, announced, held)"
            " VALUES (?, ?, ?, '[]', '[]', ?, 1, ?, TRUE, '[]')",
            ("inc-1", "oncall", contact, T0.isoformat(), json.dumps(channels)))
    db.execute("INSERT INTO incident_events (incident_id, at, kind, detail)"
               " VALUES (?, ?, ?, ?)",
               ("inc-1", T0.isoformat(), "acknowledged",
                json.dumps({"by": "Alice Martin", "contact_id": "ops", "channel": "sms"})))


async def test_forget_masks_the_history_and_deletes_subscriptions(
    store: Store, store_url: str,
) -> None:
    """Every row of the contact keeps its place in the history without its data; the
    other contact's rows are untouched; the report counts what changed."""
    db = RawDb(store_url)
    await seed(store, db)
    report = await store.forget_contact("ops", at=T0)
    assert report.counts() == {
        "deliveries_masked": 2, "deliveries_cancelled": 1, "fallbacks_masked": 1,
        "push_subscriptions_deleted": 1, "notification_logs_masked": 1,
        "timeline_events_masked": 1, "acknowledgements_masked": 0,
        "opt_outs_deleted": 0}
    rows = db.rows("SELECT idempotency_key, recipient, subject, text, html, status,"
                   " dead_letter_reason, last_error FROM deliveries ORDER BY id")
    by_key = {r[0]: r[1:] for r in rows}
    assert by_key["k-mail"][:5] == ("a***@e***.com", ERASED, ERASED, None, "failed")
    assert by_key["k-mail"][6] == ERASED  # the SMTP error named the address
    assert by_key["k-sms"][:5] == ("+336******78", ERASED, ERASED, None, "cancelled")
    assert by_key["k-sms"][5] == FORGOTTEN_REASON
    assert by_key["k-bob"][:3] == ("bob@example.com", "Panne é", "texte à ç")
    assert db.rows("SELECT recipient, subject, text, html FROM planned_fallbacks") == [
        ("a***@e***.com", ERASED, ERASED, None)]
    assert [s.contact_id for s in await store.push_subscriptions()] == ["dev"]
    logs = dict(db.rows("SELECT contact_id, channels FROM incident_recipients"))
    assert json.loads(logs["ops"]) == [["email", "a***@e***.com", "fr"],
                                       ["sms", "+336******78", "fr"]]
    assert json.loads(logs["dev"]) == [["email", "bob@example.com", "en"]]
    (detail,), = db.rows("SELECT detail FROM incident_events")
    assert json.loads(detail) == {"by": "A. M.", "contact_id": "ops", "channel": "sms"}
    everything = repr(db.rows("SELECT * FROM deliveries WHERE contact_id = 'ops'")
                      + db.rows("SELECT * FROM planned_fallbacks")
                      + db.rows("SELECT * FROM incident_recipients WHERE contact_id = 'ops'")
                      + db.rows("SELECT * FROM incident_events"))
    for personal in (EMAIL, PHONE, "Alice", "Martin", "Panne", "texte"):
        assert personal not in everything


async def test_forgetting_twice_or_an_unknown_contact_changes_no_data(
    store: Store, store_url: str,
) -> None:
    """Forgetting again masks the same rows again, to the same values; an unknown id: 0."""
    db = RawDb(store_url)
    await seed(store, db)
    await store.forget_contact("ops", at=T0)
    before = db.rows("SELECT id, recipient, subject, text, status FROM deliveries ORDER BY id")
    again = await store.forget_contact("ops", at=T0)
    assert again.deliveries_cancelled == 0 and again.push_subscriptions_deleted == 0
    assert db.rows("SELECT id, recipient, subject, text, status FROM deliveries"
                   " ORDER BY id") == before
    assert (await store.forget_contact("nobody", at=T0)).total == 0


async def test_forget_deletes_the_sms_opt_outs_of_its_numbers(
    store: Store, store_url: str,
) -> None:
    """The opt-outs of the numbers its SMS went to, and of the numbers given, are deleted;
    another number's stay. (The PostgreSQL schema takes the opt-out table later: the
    table SQLite has is created here, the store uses it once it exists.)"""
    db = RawDb(store_url)
    if db.postgres:
        db.execute("CREATE TABLE IF NOT EXISTS sms_opt_outs (id BIGINT GENERATED BY DEFAULT"
                   " AS IDENTITY PRIMARY KEY, phone TEXT NOT NULL, keyword TEXT NOT NULL,"
                   " at TIMESTAMPTZ NOT NULL)")
    await store.commit_plan([], [
        of("ops", make_delivery("k-sms", recipient=PHONE, channel="sms"))],
        now=T0, deadline_s=60)
    for phone in (PHONE, "+33698765432", "+447700900123"):
        db.execute("INSERT INTO sms_opt_outs (phone, keyword, at) VALUES (?, 'STOP', ?)",
                   (phone, T0.isoformat()))
    report = await store.forget_contact("ops", at=T0, phones=["+33698765432"])
    assert report.opt_outs_deleted == 2
    assert db.rows("SELECT phone FROM sms_opt_outs") == [("+447700900123",)]


async def test_forget_reduces_an_acknowledger_name_to_initials(
    store: Store, store_url: str,
) -> None:
    """An incident the contact acknowledged keeps who (the id) but not the name; another
    contact's acknowledgement stays. (PostgreSQL: the columns SQLite has are added here.)"""
    db = RawDb(store_url)
    if db.postgres:
        db.execute("ALTER TABLE incidents ADD COLUMN IF NOT EXISTS acknowledged_by_id TEXT,"
                   " ADD COLUMN IF NOT EXISTS acknowledged_by_name TEXT")
    for incident, contact, name in (("inc-a", "ops", "Alice Martin"),
                                    ("inc-b", "dev", "Bob Durand")):
        db.execute(
            "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
            " audiences, decision, meta, opened_at, started_at, updated_at,"
            " acknowledged_by_id, acknowledged_by_name)"
            " VALUES (?, 'root', ?, '{}', 'open', 'critical', '[]', '{}', '{}', ?, ?, ?, ?, ?)",
            (incident, incident, T0.isoformat(), T0.isoformat(), T0.isoformat(), contact,
             name))
    report = await store.forget_contact("ops", at=T0)
    assert report.acknowledgements_masked == 1
    assert sorted(db.rows("SELECT id, acknowledged_by_id, acknowledged_by_name"
                          " FROM incidents")) == [("inc-a", "ops", "A. M."),
                                                  ("inc-b", "dev", "Bob Durand")]


def test_names_become_initials_and_addresses_in_events_are_masked() -> None:
    """What replaces a name or an address in a timeline event."""
    assert mask_name("Alice  Martin-Dupont") == "A. M."
    assert mask_name("") == ""
    assert json.loads(erased_event_detail(json.dumps(
        {"by": "Zoé", "contact_id": "z", "address": "+33612345678"}))) == {
        "by": "Z.", "contact_id": "z", "address": "+336******78"}


async def test_a_store_error_does_not_carry_the_row(store: Store) -> None:
    """A write the database refuses (here a phase the schema does not know) fails
    without the row's address or message in the error nor in an error chained to it
    (PostgreSQL writes the failing row in its DETAIL; SQLite's job errors stay as they
    are, by design, and name only the constraint)."""
    bad = replace(make_delivery("k-bad", recipient=EMAIL), phase="bogus")  # type: ignore[arg-type]
    with pytest.raises((StoreError, sqlite3.IntegrityError)) as caught:
        await store.commit_plan([], [bad], now=T0, deadline_s=60)
    chain = [caught.value, caught.value.__cause__,
             None if caught.value.__suppress_context__ else caught.value.__context__]
    text = " ".join(repr(e) for e in chain if e is not None)
    assert "phase" in text
    assert EMAIL not in text and "texte" not in text, text
