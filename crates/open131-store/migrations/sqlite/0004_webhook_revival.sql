-- `webhooks resend` revives a webhook: the give-up rule counts attempts since
-- the last revival, so a revived webhook gets a whole new retry schedule while
-- its attempt history (numbered on) is kept.
ALTER TABLE webhooks ADD COLUMN attempts_base INTEGER NOT NULL DEFAULT 0;
