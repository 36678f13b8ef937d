-- Books and foreign-currency payouts (issue 8).
-- A wallet belongs to a book (main: the payout balance; nominal: the escrow
-- account; settlement: the settlement account) and has an exchange account for
-- converted payouts, and held/acquiring accounts for card payments (issue 9).
-- SQLite cannot change a primary key: the table is rebuilt.
CREATE TABLE wallets_by_book (
    project_id TEXT    NOT NULL REFERENCES projects(id),
    book       TEXT    NOT NULL CHECK (book IN ('main', 'nominal', 'settlement')),
    currency   TEXT    NOT NULL,
    available  INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved   INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    payouts    INTEGER NOT NULL DEFAULT 0 CHECK (payouts >= 0),
    funding    INTEGER NOT NULL DEFAULT 0,
    exchange   INTEGER NOT NULL DEFAULT 0,
    held       INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    acquiring  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, book, currency)
) STRICT;
INSERT INTO wallets_by_book (project_id, book, currency, available, reserved, payouts, funding)
SELECT project_id, 'main', currency, available, reserved, payouts, funding FROM wallets;
DROP TABLE wallets;
ALTER TABLE wallets_by_book RENAME TO wallets;

ALTER TABLE ledger_postings ADD COLUMN book TEXT NOT NULL DEFAULT 'main';
DROP INDEX ledger_postings_wallet;
CREATE INDEX ledger_postings_wallet ON ledger_postings (project_id, book, currency, created_at_us);

-- The book a session's payouts are paid from, and whether it was made by a
-- card method of session/multi/ (multi_card) or a payout method (payout).
ALTER TABLE sessions ADD COLUMN book TEXT NOT NULL DEFAULT 'main';
ALTER TABLE sessions ADD COLUMN shape TEXT NOT NULL DEFAULT 'payout';
-- A foreign-currency payout funded in roubles: its cost and the rate (millionths of a rouble per unit).
ALTER TABLE payouts ADD COLUMN charged_amount INTEGER;
ALTER TABLE payouts ADD COLUMN charged_currency TEXT;
ALTER TABLE payouts ADD COLUMN fx_rate_millionths INTEGER;

-- What the partner is asked to confirm for a nominal, settlement or converted payout (JSON).
ALTER TABLE payouts ADD COLUMN confirm_information TEXT;

-- The operator's exchange rates: roubles per unit, in millionths.
CREATE TABLE fx_rates (
    currency           TEXT    PRIMARY KEY,
    rate_millionths    INTEGER NOT NULL CHECK (rate_millionths > 0),
    updated_at_us      INTEGER NOT NULL
) STRICT;

-- Acquiring card payments (issue 9): a session's payment, beside its payouts.
CREATE TABLE payments (
    project_id      TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT    NOT NULL,
    method_masked   TEXT    NOT NULL,
    customer        TEXT    NOT NULL,
    participant_details TEXT,
    metadata        TEXT,
    return_url      TEXT,
    plan            TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    captured_amount INTEGER,
    created_at_us   INTEGER NOT NULL,
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, session_id) REFERENCES sessions (project_id, id)
) STRICT;
CREATE INDEX payments_session ON payments (project_id, session_id);
