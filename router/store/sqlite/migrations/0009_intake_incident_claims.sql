-- Tocsin schema v9: work that several workers could share is taken by claims with a lease.
--
-- intake: the intake processor claims unprocessed rows (`claimed_by`, `lease_until`);
-- another worker skips them until the lease runs out (a crashed worker's rows come back).
-- Marking a row processed or dead-lettered clears its claim.
ALTER TABLE intake ADD COLUMN claimed_by TEXT;
ALTER TABLE intake ADD COLUMN lease_until TEXT;

-- incidents: the scheduler claims due incidents before flushing them, so two schedulers
-- never flush the same incident at once; the flush itself stays guarded by `version`
-- inside its UPDATE. A successful flush or a quarantine clears the claim.
ALTER TABLE incidents ADD COLUMN claimed_by TEXT;
ALTER TABLE incidents ADD COLUMN lease_until TEXT;
