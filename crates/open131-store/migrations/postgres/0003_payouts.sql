-- A session's operations move to a child table, so a session can hold a list
-- of payouts (or, next, of payments); the session row keeps its own state.
CREATE TABLE payouts (
    project_id          TEXT    NOT NULL,
    session_id          TEXT    NOT NULL,
    id                  TEXT    NOT NULL,
    amount              BIGINT NOT NULL,
    currency            TEXT    NOT NULL,
    method_masked       TEXT    NOT NULL,
    participant_details TEXT    NOT NULL,
    customer            TEXT,
    metadata            TEXT,
    plan                TEXT    NOT NULL,
    created_at_us       BIGINT NOT NULL,
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, session_id) REFERENCES sessions (project_id, id)
);
CREATE INDEX payouts_session ON payouts (project_id, session_id);

INSERT INTO payouts (project_id, session_id, id, amount, currency, method_masked, participant_details, customer,
                     metadata, plan, created_at_us)
SELECT project_id, id, payout_id, amount, currency, method_masked, participant_details, customer, metadata, plan,
       payout_created_at_us
FROM sessions WHERE payout_id IS NOT NULL;

ALTER TABLE sessions DROP COLUMN payout_id;
ALTER TABLE sessions DROP COLUMN amount;
ALTER TABLE sessions DROP COLUMN currency;
ALTER TABLE sessions DROP COLUMN method_masked;
ALTER TABLE sessions DROP COLUMN participant_details;
ALTER TABLE sessions DROP COLUMN customer;
ALTER TABLE sessions DROP COLUMN metadata;
ALTER TABLE sessions DROP COLUMN plan;
ALTER TABLE sessions DROP COLUMN payout_created_at_us;
