-- Webhook fault injection per project (issue 13 §2): the project's faults
-- in their stored form (`none`, or e.g. `delay=2000ms,duplicate=0.2`), and
-- what each delivery attempt had injected into it.
ALTER TABLE projects ADD COLUMN webhook_faults TEXT NOT NULL DEFAULT 'none';
ALTER TABLE webhook_attempts ADD COLUMN injected TEXT;
