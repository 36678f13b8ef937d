-- Payouts to the self-employed (issue 11): the payout's
-- fiscalization_details as the partner sent them (JSON, the person's INN in
-- clear: the store holds personal data), read to show the echo and the
-- receipt once the payout succeeds.
ALTER TABLE payouts ADD COLUMN fiscalization TEXT;
-- The person's INN alone, indexed: a person's income in a year (the
-- self-employed limit) is summed over these payouts.
ALTER TABLE payouts ADD COLUMN fiscal_inn TEXT;
CREATE INDEX payouts_fiscal_inn ON payouts (project_id, fiscal_inn, created_at_us);
