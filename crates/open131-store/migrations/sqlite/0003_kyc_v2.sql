-- KYC v2.0: non-residents have no Russian passport, so `issuer_date` becomes
-- optional; `retry_at_us` lets a check wait (e.g. for a registry to be loaded)
-- without being picked up on every verifier round. SQLite cannot relax NOT NULL
-- in place, so the table is rebuilt.

CREATE TABLE kyc_checks_v3 (
    project_id            TEXT    NOT NULL REFERENCES projects(id),
    id                    INTEGER NOT NULL,
    api_version           TEXT    NOT NULL,
    passport_number       TEXT    NOT NULL,
    inn                   TEXT    NOT NULL,
    agent_contract_number TEXT    NOT NULL,
    birthday              TEXT    NOT NULL,
    issuer_date           TEXT,
    payload               TEXT    NOT NULL,
    outcome               TEXT,
    created_at_us         INTEGER NOT NULL,
    finished_at_us        INTEGER,
    retry_at_us           INTEGER,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, passport_number, inn, agent_contract_number),
    CHECK ((outcome IS NULL) = (finished_at_us IS NULL))
) STRICT;

INSERT INTO kyc_checks_v3 (project_id, id, api_version, passport_number, inn, agent_contract_number, birthday,
                           issuer_date, payload, outcome, created_at_us, finished_at_us, retry_at_us)
SELECT project_id, id, api_version, passport_number, inn, agent_contract_number, birthday,
       issuer_date, payload, outcome, created_at_us, finished_at_us, NULL
FROM kyc_checks;

DROP TABLE kyc_checks;
ALTER TABLE kyc_checks_v3 RENAME TO kyc_checks;
CREATE INDEX kyc_checks_pending ON kyc_checks (created_at_us) WHERE outcome IS NULL;
