-- Tocsin schema v12: the instances sharing the store record themselves (heartbeat).
--
-- One row per instance id, upserted every `instance.heartbeat_s`: its version, the hash
-- of its rule set (instances compare them) and when it started and was last seen. Rows
-- of instances gone for a day are deleted by the heartbeats of the others.
CREATE TABLE instances (
    instance_id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE INDEX instances_seen_at ON instances (seen_at);
