-- For one recipient, the notices of one incident go out in order (SQLite 0014): a claim
-- skips a later notice while the first notice of the same incident to the same contact
-- on the same channel is still pending; this index answers that in one probe.
CREATE INDEX IF NOT EXISTS deliveries_first_pending ON deliveries (
    incident_key, contact_id, channel, id
) WHERE status = 'pending' AND phase = 'firing';
