-- Refunds of captured card payments (issue 9): several per payment, each with
-- its own state; read with its session in one statement.
CREATE TABLE payment_refunds (
    project_id     TEXT    NOT NULL,
    session_id     TEXT    NOT NULL,
    payment_id     TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    -- Its place among the payment's refunds (0, 1, …): the order they were asked for.
    seq            BIGINT  NOT NULL CHECK (seq >= 0),
    amount         BIGINT  NOT NULL CHECK (amount > 0),
    state          TEXT    NOT NULL,
    is_chargeback  BOOLEAN NOT NULL DEFAULT FALSE,
    metadata       TEXT,
    created_at_us  BIGINT  NOT NULL,
    finished_at_us BIGINT,
    PRIMARY KEY (project_id, id)
);
CREATE INDEX payment_refunds_payment ON payment_refunds (project_id, payment_id);
