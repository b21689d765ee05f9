-- Tocsin schema v1: the intake log and the delivery outbox.
-- Every timestamp is UTC ISO-8601 text with microseconds and "+00:00"
-- ("2024-05-01T12:00:00.000000+00:00"): fixed width, so text order is time order.

CREATE TABLE intake (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    alert         TEXT NOT NULL,   -- JSON: labels, annotations, status, starts_at, ...
    meta          TEXT NOT NULL,   -- JSON object of strings (receiver, groupKey, ...)
    processed_at  TEXT             -- NULL until routed into the outbox
);
-- fetch_intake / intake_pending: only the unprocessed rows, in id order.
CREATE INDEX intake_unprocessed ON intake (id) WHERE processed_at IS NULL;

CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    incident_key     TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    route_id         TEXT NOT NULL,
    phase            TEXT NOT NULL CHECK (phase IN ('firing', 'resolved')),
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
                     CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    next_attempt_at  TEXT,             -- NULL once sent or failed
    deadline_at      TEXT NOT NULL,
    lease_until      TEXT,             -- set while a dispatcher holds the row
    sent_at          TEXT,
    last_error       TEXT,
    provider_id      TEXT
);
-- claim_due: pending rows by due time (a claim pushes next_attempt_at to the lease end).
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
-- list_deliveries?status=...: newest first within a status; counts() by status.
CREATE INDEX deliveries_status ON deliveries (status, id);
-- history of one incident (API, later issues).
CREATE INDEX deliveries_incident ON deliveries (incident_key, id);
