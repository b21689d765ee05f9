-- Tocsin PostgreSQL schema v4: inbound messages already handled (SNS MessageId, SMS
-- inboundMessageId), so that a message delivered twice (SNS retries, replays, or two
-- instances behind one topic) acts once; the PostgreSQL form of the SQLite migration 0011.
--
-- `kind` names the id space ('sns': an SNS MessageId, 'sms': an inboundMessageId,
-- 'sms_help': a hashed phone answered with the help text); `seen_at` is when Tocsin first
-- handled it. Rows older than `sns.inbound.dedup_keep_s` are forgotten, a few at a time,
-- by the writes that add new ones.
CREATE TABLE inbound_messages (
    kind        TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, message_id)
);
CREATE INDEX inbound_messages_seen ON inbound_messages (seen_at);
