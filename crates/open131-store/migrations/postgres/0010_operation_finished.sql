-- Multi-sessions (issue 8): a session runs several operations in turn, so
-- each payout and payment keeps the time it settled (before, the session's
-- finished_at served its one operation; rows from then keep NULL and are
-- shown with the session's).
ALTER TABLE payouts ADD COLUMN finished_at_us BIGINT;
ALTER TABLE payments ADD COLUMN finished_at_us BIGINT;
