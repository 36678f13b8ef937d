-- Virtual time per project (issue 13 §1): how far the project's clock runs
-- ahead of the real one, in microseconds (0: real time). Never negative.
ALTER TABLE projects ADD COLUMN clock_offset_us BIGINT NOT NULL DEFAULT 0;
