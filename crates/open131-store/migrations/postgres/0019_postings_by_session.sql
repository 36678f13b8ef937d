-- The inspector lists a session's postings (issue 13 §3); session ids are
-- unique across projects, so the id alone finds them.
CREATE INDEX ledger_postings_session ON ledger_postings (session_id);
