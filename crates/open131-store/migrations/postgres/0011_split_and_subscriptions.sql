-- Split payments (issue 9): a card payment's parts paid to the project's
-- contractors, each into its own wallet.
-- The contractor aliases a project's split payments may name (a NameSet: `*`, `-` or a list).
ALTER TABLE projects ADD COLUMN contractors TEXT NOT NULL DEFAULT '-';
-- The project's control account of the parts passed on to its contractors:
-- per book and currency, the sum of their wallets below.
ALTER TABLE wallets ADD COLUMN contractors BIGINT NOT NULL DEFAULT 0 CHECK (contractors >= 0);
CREATE TABLE contractor_wallets (
    project_id TEXT    NOT NULL REFERENCES projects(id),
    book       TEXT    NOT NULL,
    currency   TEXT    NOT NULL,
    alias      TEXT    NOT NULL,
    balance    BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
    PRIMARY KEY (project_id, book, currency, alias)
);
-- The contractor a split posting moved money for.
ALTER TABLE ledger_postings ADD COLUMN contractor TEXT;
-- The split as asked and, once captured, each part's amount (JSON); a
-- refund's parts taken back from each contractor (JSON).
ALTER TABLE payments ADD COLUMN revenue_split TEXT;
ALTER TABLE payment_refunds ADD COLUMN revenue_split TEXT;

-- Subscriptions (issue 9): the bank charges a card every period once its
-- first payment succeeded, each charge a session of its own.
CREATE TABLE subscriptions (
    project_id        TEXT    NOT NULL REFERENCES projects(id),
    id                TEXT    NOT NULL,
    version           BIGINT NOT NULL CHECK (version > 0),
    state             TEXT    NOT NULL,
    period            TEXT    NOT NULL,
    -- When the first payment succeeded: the schedule's points count from it.
    anchor_us         BIGINT NOT NULL,
    next_point_us     BIGINT NOT NULL,
    failures          BIGINT NOT NULL CHECK (failures >= 0),
    charges           BIGINT NOT NULL CHECK (charges >= 0),
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT    NOT NULL,
    method_masked     TEXT    NOT NULL,
    card_expiry       TEXT,
    customer          TEXT    NOT NULL,
    metadata          TEXT,
    api_version       TEXT    NOT NULL,
    first_session_id  TEXT    NOT NULL,
    -- The X-PARTNER-SUBMERCHANT of the first payment's session: its charges' too.
    submerchant       TEXT,
    created_at_us     BIGINT NOT NULL,
    updated_at_us     BIGINT NOT NULL,
    -- A node charging it (claim_due_subscriptions) until then.
    lease_until_us    BIGINT,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX subscriptions_due ON subscriptions (state, next_point_us);
-- A payment's part in a subscription: the period asked for, the
-- subscription's id once it exists, and whether it is the first payment.
ALTER TABLE payments ADD COLUMN subscription_period TEXT;
ALTER TABLE payments ADD COLUMN subscription_id TEXT;
ALTER TABLE payments ADD COLUMN subscription_initial BOOLEAN NOT NULL DEFAULT TRUE;
-- The card's expiry (MM/YYYY): a subscription's charges check it.
ALTER TABLE payments ADD COLUMN card_expiry TEXT;
