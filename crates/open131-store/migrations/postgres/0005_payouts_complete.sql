-- Payouts, complete (issue 8).
-- Which API version names sessions in the project's webhooks (session, v1, v2).
ALTER TABLE projects ADD COLUMN webhook_naming TEXT NOT NULL DEFAULT 'session';
-- The X-PARTNER-SUBMERCHANT values the project may send: '*', '-' (none) or a list.
ALTER TABLE projects ADD COLUMN submerchants TEXT NOT NULL DEFAULT '-';
-- What session/create was given for the payout that session/start/payout runs
-- (JSON of the parsed, masked fields; never a clear card number).
ALTER TABLE sessions ADD COLUMN draft TEXT;
-- The sub-merchant the session was made for.
ALTER TABLE sessions ADD COLUMN submerchant TEXT;
-- The session table changed: a payout that failed by itself (not cancelled by
-- the partner or left unconfirmed) ends its session in 'error', not 'cancelled'.
UPDATE sessions SET phase = 'error'
WHERE phase = 'cancelled' AND EXISTS (
    SELECT 1 FROM payouts p
    WHERE p.project_id = sessions.project_id AND p.session_id = sessions.id
      AND p.state LIKE 'failed:%'
      AND p.state NOT IN ('failed:session_cancelled_by_partner', 'failed:confirm_timeout')
);
