-- Tocsin schema v3: incidents (grouping, notification log, timers, timeline) and the
-- lifecycle phases of deliveries.

-- deliveries: widen the `phase` CHECK to the lifecycle phases and `status` to
-- 'cancelled' (a notice held by quiet hours, replaced before it was sent); add
-- `deferred_until` (the end of the quiet hours that held the row). SQLite cannot alter
-- a CHECK constraint: the table is rebuilt with every column of versions 1 and 2.
CREATE TABLE deliveries_v3 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    incident_key     TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    route_id         TEXT NOT NULL,
    phase            TEXT NOT NULL CHECK (phase IN ('firing', 'update', 'follow_up',
                                                    'resolved', 'summary', 'storm')),
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    contact_id       TEXT NOT NULL,
    audience         TEXT NOT NULL,
    severity         TEXT NOT NULL,
    locale           TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text             TEXT NOT NULL,
    html             TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    next_attempt_at  TEXT,
    deadline_at      TEXT NOT NULL,
    lease_until      TEXT,
    sent_at          TEXT,
    last_error       TEXT,
    provider_id      TEXT,
    segments         INTEGER,
    fallback_of      INTEGER,
    dead_letter_reason TEXT,
    deferred_until   TEXT               -- set when quiet hours held the row until then
);
INSERT INTO deliveries_v3 (id, idempotency_key, incident_key, fingerprint, route_id, phase,
    channel, recipient, contact_id, audience, severity, locale, subject, text, html, status,
    attempts, created_at, updated_at, next_attempt_at, deadline_at, lease_until, sent_at,
    last_error, provider_id, segments, fallback_of, dead_letter_reason)
SELECT id, idempotency_key, incident_key, fingerprint, route_id, phase,
    channel, recipient, contact_id, audience, severity, locale, subject, text, html, status,
    attempts, created_at, updated_at, next_attempt_at, deadline_at, lease_until, sent_at,
    last_error, provider_id, segments, fallback_of, dead_letter_reason
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v3 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE INDEX deliveries_incident ON deliveries (incident_key, id);

-- One row per incident: alerts of one route and one group (route_id + group labels).
CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,       -- inc-<16 hex>
    route_id         TEXT NOT NULL,
    group_key        TEXT NOT NULL,          -- hash of route_id + group labels
    group_labels     TEXT NOT NULL,          -- JSON object
    state            TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    severity         TEXT NOT NULL,
    audiences        TEXT NOT NULL,          -- JSON list (API filter)
    decision         TEXT NOT NULL,          -- JSON: the route decision when it opened
    meta             TEXT NOT NULL,          -- JSON: envelope of the first alert
    opened_at        TEXT NOT NULL,
    started_at       TEXT NOT NULL,          -- earliest startsAt
    updated_at       TEXT NOT NULL,
    resolved_at      TEXT,
    due_at           TEXT,                   -- the next timer (group_wait/interval, repeat,
                                             -- follow-up, endsAt); NULL: none
    flushed_at       TEXT,                   -- last time the scheduler evaluated it
    first_notice_at  TEXT,
    follow_ups       INTEGER NOT NULL DEFAULT 0,
    version          INTEGER NOT NULL DEFAULT 0  -- bumped by every change (optimistic flush)
);
CREATE UNIQUE INDEX incidents_open_group ON incidents (group_key) WHERE state = 'open';
CREATE INDEX incidents_group ON incidents (group_key, opened_at);
CREATE INDEX incidents_due ON incidents (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX incidents_list ON incidents (state, opened_at);

-- The alerts of each incident, as last received.
CREATE TABLE incident_alerts (
    incident_id    TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    labels         TEXT NOT NULL,
    annotations    TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at      TEXT NOT NULL,
    ends_at        TEXT,
    generator_url  TEXT NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    sender         TEXT NOT NULL,
    inhibited      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (incident_id, fingerprint)
) WITHOUT ROWID;

-- The notification log (Alertmanager's nflog) per incident and recipient.
CREATE TABLE incident_recipients (
    incident_id  TEXT NOT NULL,
    audience     TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    firing       TEXT NOT NULL,      -- JSON list of fingerprints told as firing
    resolved     TEXT NOT NULL,      -- JSON list of fingerprints told as resolved
    notified_at  TEXT NOT NULL,
    seq          INTEGER NOT NULL,   -- notices planned so far (part of the idempotency key)
    channels     TEXT NOT NULL,      -- JSON [[channel, address, locale], ...] of the first notice
    announced    INTEGER NOT NULL,   -- 1 once a first notice (or storm summary) is due to them
    held         TEXT NOT NULL,      -- JSON [[delivery_id, phase], ...] held by quiet hours
    PRIMARY KEY (incident_id, audience, contact_id)
) WITHOUT ROWID;

-- The timeline of each incident (API, post-mortem).
CREATE TABLE incident_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id  TEXT NOT NULL,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    detail       TEXT NOT NULL       -- JSON object
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

-- Firing alerts that can inhibit others: one row per (rule, equal-labels hash, alert).
CREATE TABLE inhibit_sources (
    rule_key     TEXT NOT NULL,
    equal_hash   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    both_sides   INTEGER NOT NULL,   -- the source also matches the rule's target matchers
    PRIMARY KEY (rule_key, equal_hash, fingerprint)
) WITHOUT ROWID;

-- Storm control: first notices per audience (counted in a sliding window), and the
-- storm summaries that replace them.
CREATE TABLE storm_notices (
    audience     TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    at           TEXT NOT NULL,
    storm_id     INTEGER,            -- set when the notice was folded into a storm
    PRIMARY KEY (audience, incident_id)
) WITHOUT ROWID;
CREATE INDEX storm_notices_at ON storm_notices (audience, at);
CREATE TABLE storms (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    audience     TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    sent_at      TEXT,               -- NULL until the summary is planned
    route_id     TEXT NOT NULL,
    decision     TEXT NOT NULL       -- JSON: decision of the first incident (template)
);
CREATE INDEX storms_due ON storms (due_at) WHERE sent_at IS NULL;
