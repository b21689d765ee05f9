-- Tocsin PostgreSQL schema v2 (SQLite v12): the instances sharing the store record
-- themselves (heartbeat); the intake claim keeps each alert's order.
--
-- One row per instance id, upserted every `instance.heartbeat_s`: its version, the hash
-- of its rule set (instances compare them) and when it started and was last seen. Rows
-- of instances gone for a day are deleted by the heartbeats of the others.
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX instances_seen_at ON instances (seen_at);

-- The intake claim skips a row while an older row of the same alert is not routed yet
-- (an alert's states applied in the order they were accepted, across instances).
CREATE INDEX intake_unprocessed_fingerprint ON intake (fingerprint, id)
    WHERE processed_at IS NULL AND dead_at IS NULL;
