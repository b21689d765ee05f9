"""Every SQL statement of the PostgreSQL store, by name (one place for this dialect).

Parameters are psycopg's: ``%s`` in order, or ``%(name)s``. Lists are passed as
PostgreSQL arrays (``= ANY(%s)``, ``unnest``). Claims lock the rows they take with
``FOR UPDATE SKIP LOCKED``, so instances claiming at once never wait on, nor take, each
other's rows; a lease that ran out at the caller's ``now`` makes a row free again.
"""

from __future__ import annotations

from itertools import combinations
from typing import Final

# --------------------------------------------------------------------------- migrations

#: One key for every instance sharing the database: migrations run under it, once.
MIGRATION_LOCK_KEY: Final = 0x746F6373696E  # "tocsin"
#: The one-time re-keying of legacy incidents at start: one instance at a time.
UPGRADE_LOCK_KEY: Final = MIGRATION_LOCK_KEY + 1
ADVISORY_XACT_LOCK: Final = "SELECT pg_advisory_xact_lock(%s)"
CREATE_SCHEMA_VERSION: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
SCHEMA_VERSIONS: Final = "SELECT version FROM schema_version"
RECORD_VERSION: Final = "INSERT INTO schema_version (version, name) VALUES (%s, %s)"
PING: Final = "SELECT 1"

# --------------------------------------------------------------------------- intake

INSERT_INTAKE: Final = (
    "INSERT INTO intake (source, received_at, fingerprint, alert, meta)"
    " SELECT source, received_at, fingerprint, alert, meta FROM unnest(%s::text[],"
    " %s::timestamptz[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY"
    " AS r(source, received_at, fingerprint, alert, meta, n) ORDER BY n RETURNING id"
)
UPSERT_POSITION: Final = (
    "INSERT INTO stream_positions (stream, topic, partition, next_offset, updated_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream, topic, partition) DO UPDATE SET"
    " next_offset = excluded.next_offset, updated_at = excluded.updated_at"
)
STREAM_POSITIONS: Final = (
    "SELECT topic, partition, next_offset FROM stream_positions WHERE stream = %s"
)
PENDING_INTAKE: Final = (
    "SELECT id, source, received_at, alert, meta FROM intake WHERE processed_at IS NULL"
    " AND dead_at IS NULL AND id > %s ORDER BY id LIMIT %s"
)
# A row waits while an older row of the same alert (fingerprint) is not routed yet,
# whoever holds it: an alert's states are applied in the order they were accepted, even
# when its firing row is held by an instance that died and its resolution came later.
CLAIM_INTAKE: Final = (
    "UPDATE intake SET claimed_by = %(owner)s, lease_until = %(lease)s WHERE id IN ("
    " SELECT id FROM intake i WHERE processed_at IS NULL AND dead_at IS NULL"
    " AND id > %(after)s"
    " AND (lease_until IS NULL OR lease_until <= %(now)s OR claimed_by = %(owner)s)"
    " AND NOT EXISTS (SELECT 1 FROM intake o WHERE o.fingerprint = i.fingerprint"
    " AND o.id < i.id AND o.processed_at IS NULL AND o.dead_at IS NULL)"
    " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING id, source, received_at, alert, meta"
)
MARK_PLANNED: Final = (
    "UPDATE intake SET processed_at = %s WHERE id = ANY(%s) AND processed_at IS NULL"
)
MARK_PROCESSED: Final = (
    "UPDATE intake SET processed_at = %s, claimed_by = NULL, lease_until = NULL"
    " WHERE id = ANY(%s) AND processed_at IS NULL"
)
MARK_DEAD: Final = (
    "UPDATE intake SET dead_at = %s, dead_letter_reason = %s, claimed_by = NULL,"
    " lease_until = NULL WHERE id = %s AND processed_at IS NULL"
)
REQUEUE_ALL_INTAKE: Final = (
    "UPDATE intake SET dead_at = NULL, dead_letter_reason = NULL WHERE dead_at IS NOT NULL"
    " RETURNING id"
)
REQUEUE_INTAKE: Final = (
    "UPDATE intake SET dead_at = NULL, dead_letter_reason = NULL WHERE dead_at IS NOT NULL"
    " AND id = ANY(%s) RETURNING id"
)
LIST_DEAD_INTAKE: Final = (
    "SELECT id, source, received_at, fingerprint, alert, dead_at, dead_letter_reason"
    " FROM intake WHERE dead_at IS NOT NULL ORDER BY id DESC LIMIT %s OFFSET %s"
)

# --------------------------------------------------------------------------- intake batch

OPEN_INCIDENTS: Final = (
    "SELECT id, group_key, opened_at, flushed_at, due_at, started_at, version"
    " FROM incidents WHERE group_key = ANY(%s) AND state = 'open'"
)
KNOWN_ALERTS: Final = (
    "SELECT a.incident_id, a.fingerprint, a.status, a.starts_at, a.sender"
    " FROM unnest(%s::text[], %s::text[]) AS j(iid, fp) JOIN incident_alerts AS a"
    " ON a.incident_id = j.iid AND a.fingerprint = j.fp"
)
LATE_RESOLVE: Final = (
    "SELECT i.id FROM incidents i JOIN incident_alerts a ON a.incident_id = i.id"
    " AND a.fingerprint = %s WHERE i.group_key = %s ORDER BY i.opened_at DESC LIMIT 1"
)
FIRING_IN_OPEN: Final = (
    "SELECT a.fingerprint, i.id, i.group_key, i.opened_at, i.flushed_at, i.due_at,"
    " i.started_at, i.version, a.status, a.starts_at, a.sender"
    " FROM incident_alerts AS a JOIN incidents AS i ON i.id = a.incident_id"
    " AND i.state = 'open' WHERE a.fingerprint = ANY(%s) AND a.status = 'firing'"
)
INSERT_INCIDENT: Final = (
    "INSERT INTO incidents (id, route_id, group_key, group_labels, state, severity,"
    " audiences, decision, meta, opened_at, started_at, updated_at, due_at, version)"
    " VALUES (%s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
UPDATE_INCIDENT: Final = (
    "UPDATE incidents SET due_at = %s, updated_at = %s, started_at = %s,"
    " version = version + %s WHERE id = %s AND version = %s"
)
INSERT_ALERT: Final = (
    "INSERT INTO incident_alerts (incident_id, fingerprint, labels, annotations, status,"
    " starts_at, ends_at, generator_url, first_seen_at, last_seen_at, sender)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
UPDATE_ALERT: Final = (
    "UPDATE incident_alerts SET labels = %s, annotations = %s, status = %s, starts_at = %s,"
    " ends_at = %s, generator_url = %s, last_seen_at = %s WHERE incident_id = %s"
    " AND fingerprint = %s"
)
TOUCH_ALERT: Final = (
    "UPDATE incident_alerts SET last_seen_at = %s, annotations = %s, ends_at = %s"
    " WHERE incident_id = %s AND fingerprint = %s"
)
INSERT_EVENT: Final = (
    "INSERT INTO incident_events (incident_id, at, kind, detail) VALUES (%s, %s, %s, %s)"
)
DELETE_SOURCES: Final = "DELETE FROM inhibit_sources WHERE fingerprint = ANY(%s)"
INSERT_SOURCE: Final = (
    "INSERT INTO inhibit_sources (rule_key, equal_hash, fingerprint, both_sides)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (rule_key, equal_hash, fingerprint)"
    " DO UPDATE SET both_sides = excluded.both_sides"
)

# --------------------------------------------------------------------------- incidents

DUE_INCIDENTS: Final = (
    "SELECT id FROM incidents WHERE due_at IS NOT NULL AND due_at <= %s"
    " ORDER BY due_at, seq LIMIT %s"
)
NEXT_DUE: Final = "SELECT MIN(due_at) FROM incidents WHERE due_at IS NOT NULL"
CLAIM_INCIDENTS: Final = (
    "UPDATE incidents SET claimed_by = %(owner)s, lease_until = %(lease)s WHERE seq IN ("
    " SELECT seq FROM incidents WHERE due_at IS NOT NULL AND due_at <= %(now)s"
    " AND (lease_until IS NULL OR lease_until <= %(now)s OR claimed_by = %(owner)s)"
    " ORDER BY due_at, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING id, due_at, seq"
)
INCIDENT: Final = "SELECT * FROM incidents WHERE id = %s"
INCIDENT_ALERTS: Final = (
    "SELECT * FROM incident_alerts WHERE incident_id = %s ORDER BY starts_at, fingerprint"
)
INCIDENT_RECIPIENTS: Final = (
    "SELECT * FROM incident_recipients WHERE incident_id = %s ORDER BY audience, contact_id"
)
DELIVERY_STATE: Final = (
    "SELECT id, status, lease_until, next_attempt_at FROM deliveries WHERE id = ANY(%s)"
)
DELIVERY_STATE_LOCKED: Final = DELIVERY_STATE + " FOR UPDATE"
#: The firing sources under one (rule_key, equal_hash): at most two of each kind.
SOURCES: Final = (
    "(SELECT fingerprint, both_sides FROM inhibit_sources WHERE rule_key = %s"
    " AND equal_hash = %s AND NOT both_sides LIMIT 2) UNION ALL"
    " (SELECT fingerprint, both_sides FROM inhibit_sources WHERE rule_key = %s"
    " AND equal_hash = %s AND both_sides LIMIT 2)"
)
STORM_RECENT: Final = (
    "SELECT COUNT(*) FROM storm_notices WHERE audience = %s AND at >= %s"
    " AND incident_id != %s"
)
FLUSH_INCIDENT: Final = (
    "UPDATE incidents SET state = %s, resolved_at = %s, due_at = %s, flushed_at = %s,"
    " first_notice_at = %s, follow_ups = %s, updated_at = %s, version = version + 1,"
    " flush_failures = 0, flush_error = NULL, claimed_by = NULL, lease_until = NULL,"
    " escalation_tier = %s, ack_notified = %s WHERE id = %s AND version = %s"
)
#: An incident's first notices still pending (queued, leased, held or waiting to retry).
FIRST_PENDING: Final = (
    "SELECT id, audience, contact_id, lease_until FROM deliveries"
    " WHERE incident_key = %s AND status = 'pending' AND phase = 'firing' ORDER BY id")
#: Cancels queued first notices, only those still pending and not leased (the rowcount
#: tells whether a dispatcher claimed one meanwhile).
CANCEL_QUEUED: Final = (
    "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = %s,"
    " last_error = 'replaced by a summary: the incident resolved before it was sent'"
    " WHERE id = ANY(%s) AND status = 'pending' AND (lease_until IS NULL OR lease_until <= %s)")
CANCEL_HELD: Final = (
    "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = %s,"
    " last_error = 'replaced by a newer notice while held by quiet hours' WHERE id = %s"
)
HOLD_DELIVERY: Final = (
    "UPDATE deliveries SET next_attempt_at = %s, deferred_until = %s, deadline_at = %s"
    " WHERE id = %s"
)
UPSERT_RECIPIENT: Final = (
    "INSERT INTO incident_recipients (incident_id, audience, contact_id, firing, resolved,"
    " notified_at, seq, channels, announced, held, asked_at, last_asked_at, answered_at,"
    " reminders) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (incident_id, audience, contact_id) DO UPDATE SET"
    " firing = excluded.firing, resolved = excluded.resolved,"
    " notified_at = excluded.notified_at, seq = excluded.seq, channels = excluded.channels,"
    " announced = excluded.announced, held = excluded.held, asked_at = excluded.asked_at,"
    " last_asked_at = excluded.last_asked_at, answered_at = excluded.answered_at,"
    " reminders = excluded.reminders"
)
SET_ALERT_STATUS: Final = (
    "UPDATE incident_alerts SET status = %s WHERE incident_id = %s AND fingerprint = %s"
)
SET_ALERT_INHIBITED: Final = (
    "UPDATE incident_alerts SET inhibited = %s WHERE incident_id = %s AND fingerprint = %s"
)
COUNT_STORM_NOTICE: Final = (
    "INSERT INTO storm_notices (audience, incident_id, at) VALUES (%s, %s, %s)"
    " ON CONFLICT (audience, incident_id) DO NOTHING"
)
OPEN_STORM: Final = (
    "SELECT id FROM storms WHERE audience = %s AND sent_at IS NULL ORDER BY id LIMIT 1"
    " FOR UPDATE"
)
INSERT_STORM: Final = (
    "INSERT INTO storms (audience, opened_at, due_at, route_id, decision)"
    " VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
FOLD_STORM_NOTICE: Final = (
    "INSERT INTO storm_notices (audience, incident_id, at, storm_id) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (audience, incident_id) DO UPDATE SET at = excluded.at,"
    " storm_id = excluded.storm_id"
)
QUARANTINE_READ: Final = (
    "SELECT flush_failures FROM incidents WHERE id = %s AND due_at IS NOT NULL FOR UPDATE"
)
QUARANTINE: Final = (
    "UPDATE incidents SET due_at = %s, flush_failures = %s, flush_error = %s,"
    " updated_at = %s, claimed_by = NULL, lease_until = NULL WHERE id = %s"
)
POSTPONE_STORM: Final = "UPDATE storms SET due_at = %s WHERE id = %s AND sent_at IS NULL"
DUE_STORMS: Final = (
    "SELECT * FROM storms WHERE sent_at IS NULL AND due_at <= %s ORDER BY due_at, id"
)
STORM_SENT_AT: Final = "SELECT sent_at FROM storms WHERE id = %s FOR UPDATE"
MARK_STORM_SENT: Final = "UPDATE storms SET sent_at = %s WHERE id = %s"
OPEN_INCIDENT_ROWS: Final = (
    "SELECT id, route_id, group_labels, decision FROM incidents WHERE state = 'open'"
)
OPEN_GROUP_EXISTS: Final = "SELECT 1 FROM incidents WHERE group_key = %s AND state = 'open'"
REKEY_INCIDENT: Final = (
    "UPDATE incidents SET route_id = %s, group_key = %s, decision = %s,"
    " version = version + 1 WHERE id = %s"
)

_SUMMARY: Final = (
    "SELECT i.*, (SELECT COUNT(*) FROM incident_alerts a WHERE a.incident_id = i.id"
    " AND a.status = 'firing') AS firing, (SELECT COUNT(*) FROM incident_alerts a"
    " WHERE a.incident_id = i.id) AS total FROM incidents i"
)
#: Filters are optional: a NULL parameter matches every row.
LIST_INCIDENTS: Final = (
    _SUMMARY + " WHERE (%(state)s::text IS NULL OR i.state = %(state)s)"
    " AND (%(route)s::text IS NULL OR i.route_id = %(route)s)"
    " AND (%(audience)s::text IS NULL OR i.audiences::jsonb ? %(audience)s)"
    " ORDER BY i.opened_at DESC, i.id LIMIT %(limit)s OFFSET %(offset)s"
)
INCIDENT_SUMMARY: Final = _SUMMARY + " WHERE i.id = %s"
STORM_INCIDENTS: Final = (
    _SUMMARY + " WHERE i.id IN (SELECT incident_id FROM storm_notices WHERE storm_id = %s)"
    " ORDER BY i.opened_at, i.id"
)
INCIDENT_EVENTS: Final = (
    "SELECT at, kind, detail FROM incident_events WHERE incident_id = %s ORDER BY id"
)
INCIDENT_DELIVERIES: Final = (
    "SELECT id, phase, channel, recipient, audience, status, attempts, created_at,"
    " updated_at, sent_at, next_attempt_at, deferred_until, last_error FROM deliveries"
    " WHERE incident_key = %s ORDER BY id"
)

# --------------------------------------------------------------------------- outbox

INSERT_DELIVERY: Final = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text, html,"
    " status, attempts, created_at, updated_at, next_attempt_at, deadline_at, last_error,"
    " dead_letter_reason)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s,"
    " %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
INSERT_PLANNED: Final = (
    "INSERT INTO planned_fallbacks (primary_key, idempotency_key, channel, recipient,"
    " subject, text, html, failed_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (primary_key, channel) DO NOTHING"
)
INSERT_FALLBACKS: Final = (
    "INSERT INTO deliveries (idempotency_key, incident_key, fingerprint, route_id, phase,"
    " channel, recipient, contact_id, audience, severity, locale, subject, text, html,"
    " status, attempts, created_at, updated_at, next_attempt_at, deadline_at, last_error,"
    " fallback_of, dead_letter_reason)"
    " SELECT f.idempotency_key, d.incident_key, d.fingerprint, d.route_id, d.phase,"
    " f.channel, f.recipient, d.contact_id, d.audience, d.severity, d.locale, f.subject,"
    " f.text, f.html,"
    " CASE WHEN f.failed_reason IS NULL THEN 'pending' ELSE 'failed' END, 0, %(now)s,"
    " %(now)s, CASE WHEN f.failed_reason IS NULL THEN %(now)s::timestamptz END,"
    " %(deadline)s, f.failed_reason, d.id,"
    " CASE WHEN f.failed_reason IS NULL THEN NULL ELSE 'permanent' END"
    " FROM planned_fallbacks f JOIN deliveries d ON d.idempotency_key = f.primary_key"
    " WHERE d.id = %(id)s ORDER BY f.channel"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
DELIVERY_WINDOW: Final = (
    "SELECT idempotency_key, created_at, deadline_at FROM deliveries WHERE id = %s"
)
DROP_PLANNED: Final = "DELETE FROM planned_fallbacks WHERE primary_key = %s"
MARK_FAILED: Final = (
    "UPDATE deliveries SET status = 'failed', last_error = %s, dead_letter_reason = %s,"
    " lease_until = NULL, next_attempt_at = NULL, updated_at = %s"
    " WHERE id = %s AND status = 'pending'"
)
MARK_SENT: Final = (
    "UPDATE deliveries SET status = 'sent', sent_at = %s, provider_id = %s, segments = %s,"
    " lease_until = NULL, next_attempt_at = NULL, updated_at = %s"
    " WHERE id = %s AND status = 'pending' RETURNING idempotency_key"
)
MARK_RETRY: Final = (
    "UPDATE deliveries SET next_attempt_at = %s, lease_until = NULL, last_error = %s,"
    " updated_at = %s WHERE id = %s AND status = 'pending'"
)
DEFER: Final = (
    "UPDATE deliveries SET next_attempt_at = %s, lease_until = NULL,"
    " attempts = GREATEST(attempts - 1, 0) WHERE id = %s AND status = 'pending'"
)
_REQUEUE: Final = (
    "UPDATE deliveries SET status = 'pending', next_attempt_at = %(now)s,"
    " updated_at = %(now)s, deadline_at = %(deadline)s, dead_letter_reason = NULL,"
    " lease_until = NULL WHERE status = 'failed'"
    " AND COALESCE(dead_letter_reason, '') <> ALL(%(unreplayable)s)"
)
REQUEUE_ALL_FAILED: Final = _REQUEUE + " RETURNING id"
REQUEUE_FAILED: Final = _REQUEUE + " AND id = ANY(%(ids)s) RETURNING id"
GET_DELIVERY: Final = "SELECT * FROM deliveries WHERE id = %s"
#: ``GET /api/v1/deliveries`` filters: the parameter name and its condition.
_DELIVERY_FILTERS: Final = (("status", "status = %(status)s"),
                            ("incident", "incident_key = %(incident)s"),
                            ("phase", "phase = %(phase)s"))
#: The history of deliveries, newest first, by the set of filters given: one statement
#: per combination (not ``%s IS NULL OR ...``), so that each plan, generic ones included,
#: walks its own index (deliveries_status, deliveries_incident, deliveries_phase).
LIST_DELIVERIES: Final[dict[frozenset[str], str]] = {
    frozenset(name for name, _ in chosen): "SELECT * FROM deliveries"
    + (" WHERE " + " AND ".join(cond for _, cond in chosen) if chosen else "")
    + " ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s"
    for size in range(len(_DELIVERY_FILTERS) + 1)
    for chosen in combinations(_DELIVERY_FILTERS, size)
}

_RANK: Final = ("(CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1"
                " WHEN 'info' THEN 2 ELSE 1 END)")
#: Lease due deliveries per channel lane (``lanes``/``limits``: the lanes with slots) and
#: up to ``other`` of the channels without a lane (``named``: every lane's channel).
#: A later notice waits while the first notice of the same incident to the same contact
#: on the same channel is pending (queued, being sent, retried): for one recipient the
#: phases go out in order (migration 0006's partial index answers it in one probe).
_IN_ORDER = (" AND (phase = 'firing' OR NOT EXISTS (SELECT 1 FROM deliveries AS f"
             " WHERE f.incident_key = deliveries.incident_key"
             " AND f.contact_id = deliveries.contact_id AND f.channel = deliveries.channel"
             " AND f.status = 'pending' AND f.phase = 'firing' AND f.id < deliveries.id))")
CLAIM_LANES: Final = (
    "WITH lane_ids AS (SELECT d.id FROM unnest(%(lanes)s::text[], %(limits)s::int[])"
    " AS l(channel, slots) CROSS JOIN LATERAL (SELECT id FROM deliveries"
    " WHERE status = 'pending' AND channel = l.channel AND next_attempt_at <= %(now)s"
    + _IN_ORDER +
    f" ORDER BY {_RANK}, next_attempt_at, id LIMIT l.slots FOR UPDATE SKIP LOCKED) AS d),"
    " other_ids AS (SELECT id FROM deliveries WHERE status = 'pending'"
    " AND next_attempt_at <= %(now)s AND NOT (channel = ANY(%(named)s::text[]))"
    + _IN_ORDER +
    f" ORDER BY {_RANK}, next_attempt_at, id LIMIT %(other)s FOR UPDATE SKIP LOCKED)"
    " UPDATE deliveries SET lease_until = %(lease)s, next_attempt_at = %(lease)s,"
    " attempts = attempts + 1, updated_at = %(now)s"
    " WHERE id IN (SELECT id FROM lane_ids UNION ALL SELECT id FROM other_ids) RETURNING *"
)
DUE_BY_CHANNEL: Final = (
    "SELECT channel, COUNT(*) FROM deliveries WHERE status = 'pending'"
    " AND next_attempt_at <= %s GROUP BY channel"
)
COUNTS: Final = (
    "SELECT (SELECT COUNT(*) FROM intake WHERE processed_at IS NULL AND dead_at IS NULL),"
    " (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'),"
    " (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= %s),"
    " (SELECT COUNT(*) FROM deliveries WHERE status = 'failed')"
)
BACKLOG: Final = (
    "SELECT (SELECT COUNT(*) FROM intake WHERE processed_at IS NULL AND dead_at IS NULL),"
    " (SELECT received_at FROM intake WHERE processed_at IS NULL AND dead_at IS NULL"
    "  ORDER BY id LIMIT 1),"
    " (SELECT COUNT(*) FROM incidents WHERE due_at IS NOT NULL AND due_at <= %s),"
    " (SELECT MIN(due_at) FROM incidents WHERE due_at IS NOT NULL),"
    " (SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= %s),"
    " (SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending')"
)

# --------------------------------------------------------------------------- subscriptions

#: One browser endpoint may belong to several contacts: the keys (the browser's) are
#: updated on the endpoint's other rows, and this contact's row inserted or updated.
#: Parameters: p256dh, auth, endpoint, contact_id, then the row's five values.
UPSERT_SUBSCRIPTION: Final = (
    "WITH keys AS (UPDATE push_subscriptions SET p256dh = %s, auth = %s"
    " WHERE endpoint = %s AND contact_id <> %s)"
    " INSERT INTO push_subscriptions (contact_id, endpoint, p256dh, auth, created_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (contact_id, endpoint) DO UPDATE SET"
    " p256dh = excluded.p256dh, auth = excluded.auth"
    " RETURNING *"
)
SUBSCRIPTIONS: Final = "SELECT * FROM push_subscriptions ORDER BY id"
CONTACT_SUBSCRIPTIONS: Final = (
    "SELECT * FROM push_subscriptions WHERE contact_id = %s ORDER BY id"
)
DELETE_SUBSCRIPTION: Final = "DELETE FROM push_subscriptions WHERE id = %s"
DELETE_ENDPOINT: Final = "DELETE FROM push_subscriptions WHERE endpoint = %s"

# --------------------------------------------------------------------------- acknowledgements

_ACK_GUARD: Final = (
    " due_at = LEAST(due_at, %(at)s), updated_at = %(now)s, version = version + 1"
    " WHERE id = %(id)s AND version = %(version)s AND state = 'open'"
)
#: An answer that acknowledges the incident. The version guard is in the UPDATE itself;
#: the timer moves to the answer at the latest (LEAST skips a NULL timer), so the
#: scheduler plans the acknowledged notices (and no reminder) now.
ACKNOWLEDGE_INCIDENT: Final = (
    "UPDATE incidents SET acknowledged_at = %(ack_at)s, acknowledged_by_id = %(by_id)s,"
    " acknowledged_by_name = %(by_name)s, ack_channel = %(channel)s," + _ACK_GUARD
)
#: An answer that does not (yet) acknowledge it (mode ``each``: others still to answer).
ANSWER_INCIDENT: Final = "UPDATE incidents SET" + _ACK_GUARD
#: The recipients who answered: ``(at, audiences[], contact_ids[], incident_id)``.
ANSWER_RECIPIENTS: Final = (
    "UPDATE incident_recipients r SET answered_at = %s"
    " FROM unnest(%s::text[], %s::text[]) AS a(audience, contact_id)"
    " WHERE r.incident_id = %s AND r.audience = a.audience"
    " AND r.contact_id = a.contact_id AND r.answered_at IS NULL"
)
#: Requests still waiting for one of the contacts' answer (the partial index
#: incident_recipients_waiting), the earliest per incident and contact, oldest first.
#: The owner and the alert name are read from the JSON text by the caller.
PENDING_ACKS: Final = (
    "SELECT * FROM (SELECT DISTINCT ON (i.id, r.contact_id) i.id, i.route_id, i.decision,"
    " i.severity, i.group_labels, r.audience, r.contact_id, r.asked_at,"
    " (SELECT a.labels FROM incident_alerts a WHERE a.incident_id = i.id"
    "  ORDER BY a.starts_at, a.fingerprint LIMIT 1) AS first_labels"
    " FROM incident_recipients r JOIN incidents i ON i.id = r.incident_id"
    " WHERE r.contact_id = ANY(%s) AND r.asked_at IS NOT NULL AND r.answered_at IS NULL"
    " AND i.state = 'open' AND i.acknowledged_at IS NULL"
    " ORDER BY i.id, r.contact_id, r.asked_at, r.audience) AS w"
    " ORDER BY asked_at, id, contact_id, audience"
)
INSERT_OPT_OUT: Final = "INSERT INTO sms_opt_outs (phone, keyword, at) VALUES (%s, %s, %s)"
OPT_OUTS: Final = "SELECT phone, keyword, at FROM sms_opt_outs ORDER BY id DESC LIMIT %s"
PHONE_OPT_OUTS: Final = (
    "SELECT phone, keyword, at FROM sms_opt_outs WHERE phone = %s ORDER BY id DESC LIMIT %s"
)

# --------------------------------------------------------------------------- inbound messages

#: Forget a bounded batch of old ids (rows another instance is deleting are skipped).
FORGET_OLD_INBOUND: Final = (
    "DELETE FROM inbound_messages WHERE (kind, message_id) IN (SELECT kind, message_id"
    " FROM inbound_messages WHERE seen_at < %s ORDER BY seen_at LIMIT %s"
    " FOR UPDATE SKIP LOCKED)"
)
#: One row when the id is new; none for a duplicate (a concurrent insert of the same id
#: waits for the other transaction, then finds it).
REMEMBER_INBOUND: Final = (
    "INSERT INTO inbound_messages (kind, message_id, seen_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (kind, message_id) DO NOTHING"
)
FORGET_INBOUND: Final = "DELETE FROM inbound_messages WHERE kind = %s AND message_id = %s"

# --------------------------------------------------------------------------- retention

INTAKE_CHUNK: Final = "SELECT id, received_at FROM intake WHERE id > %s ORDER BY id LIMIT %s"
PRUNE_INTAKE: Final = (
    "DELETE FROM intake WHERE id > %s AND id <= %s AND processed_at IS NOT NULL"
    " AND received_at < %s"
)
DELIVERIES_CHUNK: Final = (
    "SELECT id, updated_at FROM deliveries WHERE id > %s ORDER BY id LIMIT %s"
)
PRUNE_DELIVERIES: Final = (
    "DELETE FROM deliveries WHERE id > %s AND id <= %s AND status IN ('sent', 'failed')"
    " AND updated_at < %s"
)
PRUNE_ORPHAN_FALLBACKS: Final = (
    "DELETE FROM planned_fallbacks f WHERE NOT EXISTS (SELECT 1 FROM deliveries d"
    " WHERE d.idempotency_key = f.primary_key)"
)
DEAD_INTAKE_CHUNK: Final = (
    "SELECT id FROM intake WHERE dead_at IS NOT NULL AND id > %s ORDER BY id LIMIT %s"
)
PRUNE_DEAD_INTAKE: Final = (
    "DELETE FROM intake WHERE id > %s AND id <= %s AND dead_at IS NOT NULL"
    " AND processed_at IS NULL AND dead_at < %s"
)
RESOLVED_INCIDENTS: Final = (
    "SELECT id FROM incidents WHERE state = 'resolved' AND opened_at < %s"
    " AND resolved_at < %s LIMIT %s"
)
PRUNE_INCIDENT_PARTS: Final = tuple(
    f"DELETE FROM {table} WHERE incident_id = ANY(%s)"
    for table in ("incident_alerts", "incident_recipients", "incident_events",
                  "storm_notices"))
PRUNE_INCIDENTS: Final = "DELETE FROM incidents WHERE id = ANY(%s)"
PRUNE_SENT_STORMS: Final = "DELETE FROM storms WHERE sent_at IS NOT NULL AND sent_at < %s"

# --------------------------------------------------------------------------- instances

HEARTBEAT: Final = (
    "INSERT INTO instances (instance_id, version, rules_hash, started_at, seen_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (instance_id) DO UPDATE SET"
    " version = excluded.version, rules_hash = excluded.rules_hash,"
    " started_at = excluded.started_at, seen_at = excluded.seen_at"
)
FORGET_INSTANCES: Final = "DELETE FROM instances WHERE seen_at < %s"
INSTANCES_SEEN: Final = (
    "SELECT instance_id, version, rules_hash, started_at, seen_at FROM instances"
    " WHERE seen_at >= %s ORDER BY instance_id"
)

# --------------------------------------------------------------------------- privacy
# A contact forgotten (router/store/erasure.py decides the new values; these select and
# write them, in one transaction).

FORGET_DELIVERIES: Final = (
    "SELECT id, idempotency_key, channel, recipient, status FROM deliveries"
    " WHERE contact_id = %s ORDER BY id FOR UPDATE"
)
FORGET_DELIVERY: Final = (
    "UPDATE deliveries SET recipient = %(recipient)s, subject = %(erased)s,"
    " text = %(erased)s, html = NULL,"
    " last_error = CASE WHEN last_error IS NULL THEN NULL ELSE %(erased)s END,"
    " status = CASE status WHEN 'pending' THEN 'cancelled' ELSE status END,"
    " dead_letter_reason = CASE status WHEN 'pending' THEN %(reason)s"
    " ELSE dead_letter_reason END,"
    " next_attempt_at = CASE status WHEN 'pending' THEN NULL ELSE next_attempt_at END,"
    " lease_until = NULL, updated_at = %(now)s WHERE id = %(id)s"
)
FORGET_FALLBACKS: Final = (
    "SELECT primary_key, channel, recipient FROM planned_fallbacks WHERE primary_key IN"
    " (SELECT idempotency_key FROM deliveries WHERE contact_id = %s) FOR UPDATE"
)
FORGET_FALLBACK: Final = (
    "UPDATE planned_fallbacks SET recipient = %(recipient)s, subject = %(erased)s,"
    " text = %(erased)s, html = NULL,"
    " failed_reason = CASE WHEN failed_reason IS NULL THEN NULL ELSE %(erased)s END"
    " WHERE primary_key = %(primary_key)s AND channel = %(channel)s"
)
FORGET_SUBSCRIPTIONS: Final = "DELETE FROM push_subscriptions WHERE contact_id = %s"
FORGET_LOGS: Final = (
    "SELECT incident_id, audience, channels FROM incident_recipients"
    " WHERE contact_id = %s FOR UPDATE"
)
FORGET_LOG: Final = (
    "UPDATE incident_recipients SET channels = %s"
    " WHERE incident_id = %s AND audience = %s AND contact_id = %s"
)
FORGET_EVENTS: Final = (
    "SELECT id, detail FROM incident_events WHERE"
    " (CASE WHEN detail LIKE '{%%' THEN detail::jsonb ->> 'contact_id' END) = %s FOR UPDATE"
)
FORGET_EVENT: Final = "UPDATE incident_events SET detail = %s WHERE id = %s"
#: The acknowledgement columns and the opt-out table came to SQLite with its schema v10;
#: this dialect's schema takes them later: forgetting uses them once they exist.
HAS_ACK_COLUMNS: Final = (
    "SELECT EXISTS (SELECT 1 FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = 'incidents'"
    " AND column_name = 'acknowledged_by_name')"
)
HAS_OPT_OUTS: Final = "SELECT to_regclass('sms_opt_outs') IS NOT NULL"
FORGET_ACKS: Final = (
    "SELECT id, acknowledged_by_name FROM incidents WHERE acknowledged_by_id = %s FOR UPDATE"
)
FORGET_ACK: Final = "UPDATE incidents SET acknowledged_by_name = %s WHERE id = %s"
FORGET_OPT_OUTS: Final = "DELETE FROM sms_opt_outs WHERE phone = ANY(%s)"
