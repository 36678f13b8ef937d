-- Projects, their public keys, per-project id sequences and KYC checks.
-- Times are microseconds since the Unix epoch (UTC).

CREATE TABLE projects (
    id            TEXT    PRIMARY KEY,
    created_at_us INTEGER NOT NULL,
    kyc_mode      TEXT    NOT NULL DEFAULT 'sandbox'
) STRICT;

CREATE TABLE project_keys (
    project_id    TEXT    NOT NULL REFERENCES projects(id),
    fingerprint   TEXT    NOT NULL,
    spki_der      BLOB    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
) STRICT;

-- Ids are numbered per project, so one project's ids tell nothing of another's volume.
CREATE TABLE id_sequences (
    project_id TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    last       INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind)
) STRICT;

CREATE TABLE kyc_checks (
    project_id            TEXT    NOT NULL REFERENCES projects(id),
    id                    INTEGER NOT NULL,
    api_version           TEXT    NOT NULL,
    passport_number       TEXT    NOT NULL,
    inn                   TEXT    NOT NULL,
    agent_contract_number TEXT    NOT NULL,
    birthday              TEXT    NOT NULL,
    issuer_date           TEXT    NOT NULL,
    payload               TEXT    NOT NULL,
    outcome               TEXT,
    created_at_us         INTEGER NOT NULL,
    finished_at_us        INTEGER,
    PRIMARY KEY (project_id, id),
    -- The duplicate rule (`already_exists`) is this constraint, not a lookup.
    UNIQUE (project_id, passport_number, inn, agent_contract_number),
    CHECK ((outcome IS NULL) = (finished_at_us IS NULL))
) STRICT;

-- Pending checks by age: the verifier takes those older than the configured delay.
CREATE INDEX kyc_checks_pending ON kyc_checks (created_at_us) WHERE outcome IS NULL;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
