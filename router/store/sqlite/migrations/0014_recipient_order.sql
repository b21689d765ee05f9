-- Tocsin schema v14: for one recipient, the notices of one incident go out in order. A
-- claim skips a later notice (update, follow-up, resolved, ...) while the first notice
-- of the same incident to the same contact on the same channel is still pending
-- (queued, being sent, or waiting for a retry): this index answers that in one probe.
CREATE INDEX IF NOT EXISTS deliveries_first_pending ON deliveries (
    incident_key, contact_id, channel, id
) WHERE status = 'pending' AND phase = 'firing';
