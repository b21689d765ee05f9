-- Tocsin schema v2: SMS/push channel support and explicit delivery semantics.

-- Parts billed for an SMS delivery (NULL for other channels or before sending).
ALTER TABLE deliveries ADD COLUMN segments INTEGER;
-- For a fallback delivery: the id of the delivery whose permanent failure planned it.
ALTER TABLE deliveries ADD COLUMN fallback_of INTEGER;
-- Why the row is a dead letter: 'permanent' (refused), 'deadline' (retries exhausted),
-- 'unconfigured' (no adapter); NULL unless status = 'failed'.
ALTER TABLE deliveries ADD COLUMN dead_letter_reason TEXT;

-- Fallback deliveries planned with their primary, inserted into `deliveries` in the
-- same transaction that marks the primary failed (and dropped once it is sent).
CREATE TABLE planned_fallbacks (
    primary_key      TEXT NOT NULL,    -- idempotency_key of the primary delivery
    idempotency_key  TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text             TEXT NOT NULL,
    html             TEXT,
    failed_reason    TEXT,
    PRIMARY KEY (primary_key, channel)
);

-- Web Push subscriptions (the browser's PushSubscription), per contact.
CREATE TABLE push_subscriptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id  TEXT NOT NULL,
    endpoint    TEXT NOT NULL UNIQUE,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_ok_at  TEXT
);
CREATE INDEX push_subscriptions_contact ON push_subscriptions (contact_id, id);
