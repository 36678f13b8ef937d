-- Books and foreign-currency payouts (issue 8).
-- A wallet belongs to a book (main: the payout balance; nominal: the escrow
-- account; settlement: the settlement account) and has an exchange account for
-- converted payouts, and held/acquiring accounts for card payments (issue 9).
ALTER TABLE wallets ADD COLUMN book TEXT NOT NULL DEFAULT 'main'
    CHECK (book IN ('main', 'nominal', 'settlement'));
ALTER TABLE wallets ADD COLUMN exchange BIGINT NOT NULL DEFAULT 0;
ALTER TABLE wallets ADD COLUMN held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE wallets ADD COLUMN acquiring BIGINT NOT NULL DEFAULT 0;
ALTER TABLE wallets DROP CONSTRAINT wallets_pkey;
ALTER TABLE wallets ADD PRIMARY KEY (project_id, book, currency);

ALTER TABLE ledger_postings ADD COLUMN book TEXT NOT NULL DEFAULT 'main';
DROP INDEX ledger_postings_wallet;
CREATE INDEX ledger_postings_wallet ON ledger_postings (project_id, book, currency, created_at_us);

-- The book a session's payouts are paid from, and whether it was made by a
-- card method of session/multi/ (multi_card) or a payout method (payout).
ALTER TABLE sessions ADD COLUMN book TEXT NOT NULL DEFAULT 'main';
ALTER TABLE sessions ADD COLUMN shape TEXT NOT NULL DEFAULT 'payout';
-- A foreign-currency payout funded in roubles: its cost and the rate (millionths of a rouble per unit).
ALTER TABLE payouts ADD COLUMN charged_amount BIGINT;
ALTER TABLE payouts ADD COLUMN charged_currency TEXT;
ALTER TABLE payouts ADD COLUMN fx_rate_millionths BIGINT;

-- What the partner is asked to confirm for a nominal, settlement or converted payout (JSON).
ALTER TABLE payouts ADD COLUMN confirm_information TEXT;

-- The operator's exchange rates: roubles per unit, in millionths.
CREATE TABLE fx_rates (
    currency           TEXT   PRIMARY KEY,
    rate_millionths    BIGINT NOT NULL CHECK (rate_millionths > 0),
    updated_at_us      BIGINT NOT NULL
);

-- Acquiring card payments (issue 9): a session's payment, beside its payouts.
CREATE TABLE payments (
    project_id      TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    method_masked   TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    participant_details TEXT,
    metadata        TEXT,
    return_url      TEXT,
    plan            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    captured_amount BIGINT,
    created_at_us   BIGINT NOT NULL,
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, session_id) REFERENCES sessions (project_id, id)
);
CREATE INDEX payments_session ON payments (project_id, session_id);
