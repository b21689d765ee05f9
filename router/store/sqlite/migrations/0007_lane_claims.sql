-- Tocsin schema v7: deliveries are claimed per channel (one lane each), the most severe
-- first, then the oldest due. The expression is the one of router/store/lanes.py
-- (SEVERITY_RANK_SQL): the claim of a lane walks this index in order and stops at its
-- limit instead of sorting every due row of the channel.

CREATE INDEX IF NOT EXISTS deliveries_lane_due ON deliveries (
    channel,
    (CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 WHEN 'info' THEN 2 ELSE 1 END),
    next_attempt_at
) WHERE status = 'pending';
