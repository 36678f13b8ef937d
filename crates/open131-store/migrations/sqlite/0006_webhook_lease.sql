-- A claimed webhook carries its lease until its attempt is recorded or it is
-- given back, so operator commands (resend, retry-pending, a new URL) never
-- reschedule a webhook that is being delivered at that moment.
ALTER TABLE webhooks ADD COLUMN leased_until_us INTEGER;
