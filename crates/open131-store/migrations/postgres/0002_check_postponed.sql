-- A check's retry time is either a verifier's lease or a postponement (no
-- registry loaded yet); loading a registry releases only postponements.
ALTER TABLE kyc_checks ADD COLUMN postponed BOOLEAN NOT NULL DEFAULT FALSE;
