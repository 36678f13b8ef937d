-- On SQLite a check's id has been one past the project's highest since the
-- counter cost a statement per check (issue 12): nothing here reads or writes
-- these counters any more, and stale ones beside the real ids would only
-- mislead. PostgreSQL, whose writers reserve blocks of ids, keeps its table.
DROP TABLE id_sequences;
