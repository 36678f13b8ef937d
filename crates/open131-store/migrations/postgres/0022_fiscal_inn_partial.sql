-- Only fiscal payouts (to the self-employed) carry an INN, and only the
-- yearly-income sum reads this index, always by an INN: index those rows
-- alone, so that every other payout writes one b-tree fewer (issue 12).
DROP INDEX payouts_fiscal_inn;
CREATE INDEX payouts_fiscal_inn ON payouts (project_id, fiscal_inn, created_at_us) WHERE fiscal_inn IS NOT NULL;
