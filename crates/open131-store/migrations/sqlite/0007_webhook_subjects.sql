-- A webhook names its subject (kind and id), so objects other than sessions
-- (self-employed status requests, refunds) can send webhooks too.
ALTER TABLE webhooks RENAME COLUMN session_id TO subject_id;
ALTER TABLE webhooks ADD COLUMN subject_kind TEXT NOT NULL DEFAULT 'session';
