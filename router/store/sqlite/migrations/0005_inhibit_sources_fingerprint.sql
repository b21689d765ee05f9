-- Tocsin schema v5: an index on the fingerprint of inhibition sources.
-- The intake replaces the sources of every fingerprint of a batch with
-- `DELETE FROM inhibit_sources WHERE fingerprint IN (...)`; the primary key starts with
-- (rule_key, equal_hash), so without this index that statement scans the whole table.

CREATE INDEX IF NOT EXISTS inhibit_sources_fingerprint ON inhibit_sources (fingerprint);
