-- Leases with owners (issue 15): every claim records the claiming process's
-- instance id, and each serving process heartbeats a row here. A process
-- starting on SQLite releases every other instance's leases (the serve lock
-- proves their holder is gone); nodes on PostgreSQL release the leases of
-- instances whose heartbeat is older than a documented bound. So a killed
-- process's claimed work is taken again in seconds, not after its lease.
CREATE TABLE instances (
    id               TEXT    PRIMARY KEY,
    started_at_us    BIGINT NOT NULL,
    heartbeat_at_us  BIGINT NOT NULL
);
ALTER TABLE webhooks ADD COLUMN lease_owner TEXT;
ALTER TABLE session_timers ADD COLUMN lease_owner TEXT;
ALTER TABLE kyc_checks ADD COLUMN lease_owner TEXT;
ALTER TABLE subscriptions ADD COLUMN lease_owner TEXT;
