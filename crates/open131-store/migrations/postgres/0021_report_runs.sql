-- The daily registers and monthly acts written by the schedule (issue 14):
-- one row per project and report, claimed with a lease by the node writing
-- it and marked done once written (and mailed), so nodes never write or send
-- a report twice and a crashed node's claim expires.
CREATE TABLE report_runs (
    project_id       TEXT   NOT NULL,
    report           TEXT   NOT NULL,
    claimed_until_us BIGINT NOT NULL,
    done             BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (project_id, report)
);
