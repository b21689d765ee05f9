-- One browser endpoint may belong to several contacts (a shared on-call browser): a
-- subscription is unique per (contact, endpoint), no longer per endpoint (SQLite 0013).
ALTER TABLE push_subscriptions DROP CONSTRAINT push_subscriptions_endpoint_key;
ALTER TABLE push_subscriptions ADD CONSTRAINT push_subscriptions_contact_endpoint
    UNIQUE (contact_id, endpoint);
CREATE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
