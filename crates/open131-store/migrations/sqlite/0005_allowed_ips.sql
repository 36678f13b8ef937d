-- The source addresses a project's requests may come from ('*' = any).
ALTER TABLE projects ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '*';
