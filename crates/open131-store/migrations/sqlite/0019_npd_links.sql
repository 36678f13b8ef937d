-- Self-employed people's links to the bank (issue 10's linking widget; the
-- self-employed issue reads them): one row per project and INN (personal
-- data in clear: the store holds it, pages mask it), its state a
-- npd_link::LinkState name, its version guarding each change.
CREATE TABLE npd_links (
    project_id     TEXT    NOT NULL REFERENCES projects(id),
    inn            TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL,
    PRIMARY KEY (project_id, inn)
) STRICT;

-- The partners' requests to the tax service (npd/check,
-- npd/taxpayer/check_personal_info): what was asked about which INN, and the
-- answer worked out when it was asked (an npd::NpdAnswer, JSON), shown by
-- npd/request/status from ready_at on.
CREATE TABLE npd_requests (
    project_id     TEXT    NOT NULL REFERENCES projects(id),
    id             TEXT    NOT NULL,
    inn            TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    answer         TEXT    NOT NULL,
    created_at_us  INTEGER NOT NULL,
    ready_at_us    INTEGER NOT NULL,
    PRIMARY KEY (project_id, id)
) STRICT;

-- What the operator says the tax service knows of a person (open131 npd
-- set), over the sandbox's rules: the status (an npd::TaxStatus name), the
-- name and phone on file, and whether its requests fail.
CREATE TABLE npd_taxpayers (
    inn            TEXT    PRIMARY KEY,
    status         TEXT    NOT NULL,
    full_name      TEXT,
    phone          TEXT,
    service_error  INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL
) STRICT;
