-- Payout sessions, idempotency keys, bank timers, the ledger and the webhook outbox.

ALTER TABLE projects ADD COLUMN webhook_url TEXT;
ALTER TABLE projects ADD COLUMN auto_confirm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN confirm_timeout_s INTEGER NOT NULL DEFAULT 86400;
-- '*' or a comma-separated list of main-API methods the project may call.
ALTER TABLE projects ADD COLUMN methods TEXT NOT NULL DEFAULT '*';

CREATE TABLE sessions (
    project_id            TEXT    NOT NULL REFERENCES projects(id),
    id                    TEXT    NOT NULL,
    api_version           TEXT    NOT NULL,
    phase                 TEXT    NOT NULL,
    -- Optimistic concurrency: every change names the version it was computed from.
    version               INTEGER NOT NULL,
    payout_id             TEXT,
    amount                INTEGER,
    currency              TEXT,
    method_masked         TEXT,
    participant_details   TEXT,
    customer              TEXT,
    metadata              TEXT,
    plan                  TEXT,
    refund_id             TEXT,
    refunded_at_us        INTEGER,
    created_at_us         INTEGER NOT NULL,
    updated_at_us         INTEGER NOT NULL,
    payout_created_at_us  INTEGER,
    finished_at_us        INTEGER,
    PRIMARY KEY (project_id, id)
) STRICT;
CREATE UNIQUE INDEX sessions_global_id ON sessions (id);

CREATE TABLE idempotency_keys (
    project_id    TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (project_id, key)
) STRICT;

CREATE TABLE session_timers (
    project_id TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    timer      TEXT    NOT NULL,
    due_at_us  INTEGER NOT NULL,
    PRIMARY KEY (project_id, session_id, timer)
) STRICT;
CREATE INDEX session_timers_due ON session_timers (due_at_us);

-- Balances per account, kept equal to the sums of ledger_postings; the CHECKs
-- are the last line of defence against spending money that is not there.
CREATE TABLE wallets (
    project_id TEXT    NOT NULL REFERENCES projects(id),
    currency   TEXT    NOT NULL,
    available  INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved   INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    payouts    INTEGER NOT NULL DEFAULT 0 CHECK (payouts >= 0),
    funding    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, currency)
) STRICT;

CREATE TABLE ledger_postings (
    id            INTEGER PRIMARY KEY,
    project_id    TEXT    NOT NULL,
    currency      TEXT    NOT NULL,
    movement      TEXT    NOT NULL,
    account       TEXT    NOT NULL,
    amount        INTEGER NOT NULL,
    session_id    TEXT,
    created_at_us INTEGER NOT NULL
) STRICT;
CREATE INDEX ledger_postings_wallet ON ledger_postings (project_id, currency);

CREATE TABLE webhooks (
    id                 INTEGER PRIMARY KEY,
    project_id         TEXT    NOT NULL,
    session_id         TEXT    NOT NULL,
    type               TEXT    NOT NULL,
    body               BLOB    NOT NULL,
    created_at_us      INTEGER NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_us INTEGER NOT NULL,
    last_status        INTEGER,
    last_error         TEXT,
    delivered_at_us    INTEGER
) STRICT;
CREATE INDEX webhooks_due ON webhooks (next_attempt_at_us) WHERE state = 'pending';
CREATE INDEX webhooks_session ON webhooks (project_id, session_id);

CREATE TABLE webhook_attempts (
    webhook_id  INTEGER NOT NULL REFERENCES webhooks(id),
    attempt     INTEGER NOT NULL,
    at_us       INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, attempt)
) STRICT;
