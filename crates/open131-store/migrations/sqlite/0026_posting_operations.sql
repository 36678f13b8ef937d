-- The registers (issue 14) name the operation whose money a posting moved
-- (a payout, payment or refund id); NULL for a top-up and for postings
-- written before this column.
ALTER TABLE ledger_postings ADD COLUMN operation_id TEXT;
