-- Tocsin schema v10: acknowledgements (routes with an `ack:` policy).

-- deliveries: widen the `phase` CHECK to the acknowledgement phases ('reminder': a
-- re-send to who has not answered, 'escalation': an escalation tier's first notice,
-- 'acknowledged': "Acknowledged by Alice" to the others, 'reply': an SMS answer to an
-- inbound reply). SQLite cannot alter a CHECK constraint: the table is rebuilt with
-- every column of versions 1 to 9 (0001, 0002: segments, fallback_of,
-- dead_letter_reason; 0003: deferred_until) and every index (0001/0003: deliveries_due,
-- deliveries_status, deliveries_incident; 0007: deliveries_lane_due). The AUTOINCREMENT
-- counter is carried over, so an id pruned by retention is never given again (held
-- notices and fallbacks refer to delivery ids).
CREATE TABLE deliveries_v10 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    incident_key     TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    route_id         TEXT NOT NULL,
    phase            TEXT NOT NULL CHECK (phase IN ('firing', 'update', 'follow_up',
                                                    'resolved', 'summary', 'storm',
                                                    'reminder', 'escalation',
                                                    'acknowledged', 'reply')),
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
    deferred_until   TEXT
);
INSERT INTO deliveries_v10 (id, idempotency_key, incident_key, fingerprint, route_id, phase,
    channel, recipient, contact_id, audience, severity, locale, subject, text, html, status,
    attempts, created_at, updated_at, next_attempt_at, deadline_at, lease_until, sent_at,
    last_error, provider_id, segments, fallback_of, dead_letter_reason, deferred_until)
SELECT id, idempotency_key, incident_key, fingerprint, route_id, phase,
    channel, recipient, contact_id, audience, severity, locale, subject, text, html, status,
    attempts, created_at, updated_at, next_attempt_at, deadline_at, lease_until, sent_at,
    last_error, provider_id, segments, fallback_of, dead_letter_reason, deferred_until
FROM deliveries;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'deliveries_v10', seq FROM sqlite_sequence WHERE name = 'deliveries'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'deliveries_v10');
UPDATE sqlite_sequence
    SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'))
    WHERE name = 'deliveries_v10'
    AND EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'deliveries');
DROP TABLE deliveries;
ALTER TABLE deliveries_v10 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE INDEX deliveries_incident ON deliveries (incident_key, id);
CREATE INDEX deliveries_lane_due ON deliveries (
    channel,
    (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 WHEN 'info' THEN 2 ELSE 1 END),
    next_attempt_at
) WHERE status = 'pending';
-- GET /api/v1/deliveries?phase=...: newest first within a phase.
CREATE INDEX deliveries_phase ON deliveries (phase, id);

-- incidents: who acknowledged it, when and how (NULL: not acknowledged); the escalation
-- tiers paged so far; whether the 'acknowledged' notices were planned.
ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;
ALTER TABLE incidents ADD COLUMN acknowledged_by_id TEXT;     -- contact id, NULL: operator
ALTER TABLE incidents ADD COLUMN acknowledged_by_name TEXT;
ALTER TABLE incidents ADD COLUMN ack_channel TEXT;            -- sms | link | api | cli
ALTER TABLE incidents ADD COLUMN escalation_tier INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN ack_notified INTEGER NOT NULL DEFAULT 0;

-- incident_recipients: the answer asked of each recipient. `asked_at`: the first notice
-- that asked (NULL: never asked); `last_asked_at`: when the last notice asking reaches
-- them (the end of the quiet hours holding it), the base of the next reminder;
-- `answered_at`: their answer; `reminders`: re-sends so far (part of their keys).
ALTER TABLE incident_recipients ADD COLUMN asked_at TEXT;
ALTER TABLE incident_recipients ADD COLUMN last_asked_at TEXT;
ALTER TABLE incident_recipients ADD COLUMN answered_at TEXT;
ALTER TABLE incident_recipients ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
-- An SMS reply looks up the requests still waiting for that contact's answer.
CREATE INDEX incident_recipients_waiting ON incident_recipients (contact_id, incident_id)
    WHERE asked_at IS NOT NULL AND answered_at IS NULL;

-- Opt-outs (STOP, ARRET, ...) received from phones: the carrier no longer delivers SMS to
-- them; Tocsin records them and tells the routes' owners.
CREATE TABLE sms_opt_outs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    phone    TEXT NOT NULL,      -- E.164
    keyword  TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX sms_opt_outs_phone ON sms_opt_outs (phone, id);
