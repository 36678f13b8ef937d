-- One lifecycle per object: the session row keeps the session's own state
-- (created, in_progress, accepted, cancelled) and each payout row its own
-- (preparing, awaiting_confirm, processing, succeeded, failed:CODE). Until now
-- `sessions.phase` held the two fused; split it.
ALTER TABLE payouts ADD COLUMN state TEXT NOT NULL DEFAULT 'preparing';
UPDATE payouts SET state = (
    SELECT s.phase FROM sessions s WHERE s.project_id = payouts.project_id AND s.id = payouts.session_id
);
UPDATE sessions SET phase = CASE
    WHEN phase IN ('preparing', 'awaiting_confirm', 'processing') THEN 'in_progress'
    WHEN phase = 'succeeded' THEN 'accepted'
    WHEN phase LIKE 'failed:%' THEN 'cancelled'
    ELSE phase
END;
