-- Tocsin schema v4: where each consumed stream partition was handed off to the intake.
-- Written in the same transaction as the intake rows it covers, so a message that is
-- redelivered after a crash (its offset not yet committed to Kafka) is recognised as
-- already in the intake and skipped: each message is handed off exactly once.

CREATE TABLE stream_positions (
    stream       TEXT NOT NULL,      -- the consumer group id
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,   -- the offset of the next message not yet handed off
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (stream, topic, partition)
);
