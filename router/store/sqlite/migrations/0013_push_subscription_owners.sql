-- One browser endpoint may belong to several contacts (a shared on-call browser): the
-- subscription is unique per (contact, endpoint), no longer per endpoint, so registering
-- it for a second contact keeps the first one's.
CREATE TABLE push_subscriptions_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    contact_id  TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_ok_at  TEXT,
    UNIQUE (contact_id, endpoint)
);
INSERT INTO push_subscriptions_new (id, contact_id, endpoint, p256dh, auth, created_at,
                                    last_ok_at)
    SELECT id, contact_id, endpoint, p256dh, auth, created_at, last_ok_at
    FROM push_subscriptions;
DROP TABLE push_subscriptions;
ALTER TABLE push_subscriptions_new RENAME TO push_subscriptions;
CREATE INDEX push_subscriptions_contact ON push_subscriptions (contact_id, id);
CREATE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
