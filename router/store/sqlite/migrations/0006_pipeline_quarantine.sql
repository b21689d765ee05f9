-- Tocsin schema v6: items set aside by a failing pipeline step.
--
-- intake: a row whose routing raised is dead-lettered (`dead_at`, `dead_letter_reason`),
-- not marked processed: it is no longer fetched, it is listed by
-- `GET /api/v1/intake?status=dead` and replayed by `tocsin intake retry`.
ALTER TABLE intake ADD COLUMN dead_at TEXT;
ALTER TABLE intake ADD COLUMN dead_letter_reason TEXT;
DROP INDEX IF EXISTS intake_unprocessed;
CREATE INDEX intake_unprocessed ON intake (id) WHERE processed_at IS NULL AND dead_at IS NULL;
CREATE INDEX intake_dead ON intake (id) WHERE dead_at IS NOT NULL;

-- incidents: a flush that raised quarantines the incident: its timer is pushed out with
-- exponential back-off (`flush_failures` in a row), the reason kept in `flush_error`;
-- the next successful flush clears both.
ALTER TABLE incidents ADD COLUMN flush_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN flush_error TEXT;
