-- Recurrent payments (issue 9): a card payment asked to save the card
-- (`payment_options.recurrent`) issues a token when it succeeds; later
-- payments use it until it is disabled. The token belongs to the payment that
-- issued it; its activity changes only by `recurrent/disable`.
ALTER TABLE payments ADD COLUMN recurrent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE payments ADD COLUMN recurrent_token TEXT;
ALTER TABLE payments ADD COLUMN recurrent_created_at_us INTEGER;
ALTER TABLE payments ADD COLUMN recurrent_finished_at_us INTEGER;
ALTER TABLE payments ADD COLUMN recurrent_active INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX payments_recurrent_token ON payments (project_id, recurrent_token)
    WHERE recurrent_token IS NOT NULL;
