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
