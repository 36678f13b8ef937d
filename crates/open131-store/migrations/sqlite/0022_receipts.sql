-- Receipts of payouts to the self-employed (issue 11) get their own state:
-- "<state> <attempts> <changed_at_us>[ <cancel reason>]" (domain
-- receipt::Receipt, written and read by the store's rows). NULL: no receipt
-- is due (no fiscalization, or the payout has not succeeded). A receipt
-- that registered before this column existed was registered at once.
ALTER TABLE payouts ADD COLUMN receipt TEXT;
UPDATE payouts SET receipt = 'registered 1 ' || CAST(COALESCE(finished_at_us, created_at_us) AS TEXT)
    WHERE fiscalization IS NOT NULL AND state = 'succeeded';
-- The operator's word on how many registrations of each receipt the tax
-- service refuses before it accepts one.
ALTER TABLE npd_taxpayers ADD COLUMN receipt_refusals INTEGER NOT NULL DEFAULT 0;
