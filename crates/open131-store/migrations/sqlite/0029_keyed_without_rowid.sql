-- A timer and an idempotency key are small rows, always found by their
-- primary key: kept in that key's b-tree alone (WITHOUT ROWID) instead of a
-- rowid table beside its key's index, so each one written touches one b-tree
-- fewer. Each b-tree a group commit touches is a page more in the WAL and in
-- its fsync (issue 12). Rebuilt, as SQLite cannot change a table's kind in place.
CREATE TABLE session_timers_keyed (
    project_id  TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    timer       TEXT    NOT NULL,
    due_at_us   INTEGER NOT NULL,
    lease_owner TEXT,
    PRIMARY KEY (project_id, session_id, timer)
) STRICT, WITHOUT ROWID;
INSERT INTO session_timers_keyed (project_id, session_id, timer, due_at_us, lease_owner)
SELECT project_id, session_id, timer, due_at_us, lease_owner FROM session_timers;
DROP TABLE session_timers;
ALTER TABLE session_timers_keyed RENAME TO session_timers;
CREATE INDEX session_timers_due ON session_timers (due_at_us);

CREATE TABLE idempotency_keys_keyed (
    project_id    TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    method        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (project_id, key)
) STRICT, WITHOUT ROWID;
INSERT INTO idempotency_keys_keyed (project_id, key, method, created_at_us)
SELECT project_id, key, method, created_at_us FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_keyed RENAME TO idempotency_keys;
