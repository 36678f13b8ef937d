-- Self-employed people's links to the bank (issue 10's linking widget; the
-- self-employed issue reads them): one row per project and INN (personal
-- data in clear: the store holds it, pages mask it), its state a
-- npd_link::LinkState name, its version guarding each change.
CREATE TABLE npd_links (
    project_id     TEXT    NOT NULL REFERENCES projects(id),
    inn            TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    version        BIGINT  NOT NULL,
    updated_at_us  BIGINT  NOT NULL,
    PRIMARY KEY (project_id, inn)
);
