-- Payouts to the self-employed (issue 11): the payout's
-- fiscalization_details as the partner sent them (JSON, the person's INN in
-- clear: the store holds personal data), read to show the echo and the
-- receipt once the payout succeeds.
ALTER TABLE payouts ADD COLUMN fiscalization TEXT;
