-- Tocsin schema v8: an index on the fingerprint of incident alerts.
-- A resolved alert that finds no open incident of its group under the current rules (its
-- route was renamed or removed by a reload, or its incident was opened under the
-- positional route ids of Tocsin before v8) resolves the open incidents that still hold it
-- firing: `... FROM incident_alerts WHERE fingerprint = ?`. The primary key starts with
-- incident_id, so without this index that lookup scans the whole table.

CREATE INDEX IF NOT EXISTS incident_alerts_fingerprint ON incident_alerts (fingerprint);
