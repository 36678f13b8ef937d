-- The whole schema as SQLite's migrations 1-7 leave it, for PostgreSQL.
-- Times are microseconds since the Unix epoch (UTC), as on SQLite, so both
-- backends share one row decoding.

CREATE TABLE projects (
    id                TEXT    PRIMARY KEY,
    created_at_us     BIGINT  NOT NULL,
    kyc_mode          TEXT    NOT NULL DEFAULT 'sandbox',
    webhook_url       TEXT,
    auto_confirm      BOOLEAN NOT NULL DEFAULT FALSE,
    confirm_timeout_s BIGINT  NOT NULL DEFAULT 86400,
    methods           TEXT    NOT NULL DEFAULT '*',
    allowed_ips       TEXT    NOT NULL DEFAULT '*'
);

CREATE TABLE project_keys (
    project_id    TEXT   NOT NULL REFERENCES projects(id),
    fingerprint   TEXT   NOT NULL,
    spki_der      BYTEA  NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
);

-- Ids are numbered per project, so one project's ids tell nothing of another's volume.
CREATE TABLE id_sequences (
    project_id TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    last       BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind)
);

CREATE TABLE kyc_checks (
    project_id            TEXT   NOT NULL REFERENCES projects(id),
    id                    BIGINT NOT NULL,
    api_version           TEXT   NOT NULL,
    passport_number       TEXT   NOT NULL,
    inn                   TEXT   NOT NULL,
    agent_contract_number TEXT   NOT NULL,
    birthday              TEXT   NOT NULL,
    issuer_date           TEXT,
    payload               TEXT   NOT NULL,
    outcome               TEXT,
    created_at_us         BIGINT NOT NULL,
    finished_at_us        BIGINT,
    -- Postponed (no registry yet) or leased to a verifier until then.
    retry_at_us           BIGINT,
    PRIMARY KEY (project_id, id),
    -- The duplicate rule (`already_exists`) is this constraint, not a lookup.
    UNIQUE (project_id, passport_number, inn, agent_contract_number),
    CHECK ((outcome IS NULL) = (finished_at_us IS NULL))
);
CREATE INDEX kyc_checks_pending ON kyc_checks (created_at_us) WHERE outcome IS NULL;

CREATE TABLE meta (
    key   TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE sessions (
    project_id           TEXT   NOT NULL REFERENCES projects(id),
    id                   TEXT   NOT NULL,
    api_version          TEXT   NOT NULL,
    phase                TEXT   NOT NULL,
    -- Optimistic concurrency: every change names the version it was computed from.
    version              BIGINT NOT NULL,
    payout_id            TEXT,
    amount               BIGINT,
    currency             TEXT,
    method_masked        TEXT,
    participant_details  TEXT,
    customer             TEXT,
    metadata             TEXT,
    plan                 TEXT,
    refund_id            TEXT,
    refunded_at_us       BIGINT,
    created_at_us        BIGINT NOT NULL,
    updated_at_us        BIGINT NOT NULL,
    payout_created_at_us BIGINT,
    finished_at_us       BIGINT,
    PRIMARY KEY (project_id, id)
);
CREATE UNIQUE INDEX sessions_global_id ON sessions (id);

CREATE TABLE idempotency_keys (
    project_id    TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    method        TEXT   NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);

CREATE TABLE session_timers (
    project_id TEXT   NOT NULL,
    session_id TEXT   NOT NULL,
    timer      TEXT   NOT NULL,
    due_at_us  BIGINT NOT NULL,
    PRIMARY KEY (project_id, session_id, timer)
);
CREATE INDEX session_timers_due ON session_timers (due_at_us);

-- Balances per account, kept equal to the sums of ledger_postings; the CHECKs
-- are the last line of defence against spending money that is not there.
CREATE TABLE wallets (
    project_id TEXT   NOT NULL REFERENCES projects(id),
    currency   TEXT   NOT NULL,
    available  BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),
    reserved   BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    payouts    BIGINT NOT NULL DEFAULT 0 CHECK (payouts >= 0),
    funding    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, currency)
);

CREATE TABLE ledger_postings (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id    TEXT   NOT NULL,
    currency      TEXT   NOT NULL,
    movement      TEXT   NOT NULL,
    account       TEXT   NOT NULL,
    amount        BIGINT NOT NULL,
    session_id    TEXT,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX ledger_postings_wallet ON ledger_postings (project_id, currency);

CREATE TABLE webhooks (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id         TEXT   NOT NULL,
    subject_id         TEXT   NOT NULL,
    type               TEXT   NOT NULL,
    body               BYTEA  NOT NULL,
    created_at_us      BIGINT NOT NULL,
    state              TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts           BIGINT NOT NULL DEFAULT 0,
    attempts_base      BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_us BIGINT NOT NULL,
    last_status        BIGINT,
    last_error         TEXT,
    delivered_at_us    BIGINT,
    leased_until_us    BIGINT,
    subject_kind       TEXT   NOT NULL DEFAULT 'session'
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at_us) WHERE state = 'pending';
CREATE INDEX webhooks_session ON webhooks (project_id, subject_id);

CREATE TABLE webhook_attempts (
    webhook_id  BIGINT NOT NULL REFERENCES webhooks(id),
    attempt     BIGINT NOT NULL,
    at_us       BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, attempt)
);
