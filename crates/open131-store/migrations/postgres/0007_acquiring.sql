-- Acquiring card payments served (issue 9): a project's capture mode, hold
-- timeout and fee rate; a payment's fee and its wrong 3-D Secure codes; the
-- bank's fees as a wallet account.
ALTER TABLE projects ADD COLUMN capture_mode TEXT NOT NULL DEFAULT 'auto' CHECK (capture_mode IN ('auto', 'hold'));
ALTER TABLE projects ADD COLUMN capture_timeout_s BIGINT NOT NULL DEFAULT 432000 CHECK (capture_timeout_s >= 0);
ALTER TABLE projects ADD COLUMN payment_fee_bp BIGINT NOT NULL DEFAULT 0
    CHECK (payment_fee_bp BETWEEN 0 AND 10000);
ALTER TABLE payments ADD COLUMN fee_amount BIGINT NOT NULL DEFAULT 0 CHECK (fee_amount >= 0);
ALTER TABLE payments ADD COLUMN three_ds_attempts BIGINT NOT NULL DEFAULT 0 CHECK (three_ds_attempts >= 0);
ALTER TABLE wallets ADD COLUMN fees BIGINT NOT NULL DEFAULT 0;
